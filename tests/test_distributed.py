"""Multi-process training: a real 2-process gloo DDP job under --green, and the GPU matching."""

from __future__ import annotations

import json

import pytest
from installed import require

from pytest_greennlp.distributed import RankRecorder, match_gpus, rank_recorder
from pytest_greennlp.errors import ConfigError

#: A stand-in machine-wide counter: every read adds 1.5 J. Ranks never read it, so the
#: job's machine-scope energy is whatever the parent's window edges read.
MACHINE_METER = """
class MachineCounter:
    domain = "machine"
    method = "fake-counter"
    measured = True
    source = "stand-in machine-wide counter"
    scope = "machine"

    def __init__(self):
        self.reads = 0

    def open(self):
        pass

    def read_j(self):
        self.reads += 1
        return 1.5 * self.reads

    def close(self):
        pass

def pytest_greennlp_energy_readers(config):
    return [MachineCounter()]
"""

#: Two ranks train a Linear(32, 4) with DDP for 5 steps on their own half of the data.
DDP_TEST = '''
import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from pytest_greennlp.distributed import rank_recorder

STEPS, BATCH = 5, 16


def train(rank, steps, fail_rank):
    torch.manual_seed(rank)
    green = rank_recorder()
    model = DistributedDataParallel(torch.nn.Linear(32, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(BATCH, 32), torch.randint(0, 4, (BATCH,))
    loss_fn = torch.nn.CrossEntropyLoss()
    green.model(model, x, calls=steps, loss_fn=lambda out: loss_fn(out, y))
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    green.examples(steps * BATCH)
    weights = model.module.weight.detach().clone()
    dist.all_reduce(weights)  # DDP keeps the replicas equal: the sum is twice rank 0's
    green.metric("replicas_equal", float(torch.allclose(weights, 2 * model.module.weight)))
    if rank == fail_rank:
        raise RuntimeError("rank failed on purpose")


@pytest.mark.green_train
def test_ddp_job(green):
    green.spawn(train, args=(STEPS, -1), nprocs=2, backend="gloo")


@pytest.mark.green_train
def test_failing_rank(green):
    green.spawn(train, args=(1, 1), nprocs=2, backend="gloo")
'''


@pytest.mark.slow
def test_two_rank_gloo_job_gets_one_price_tag(pytester: pytest.Pytester) -> None:
    require("torch")
    pytester.makeconftest(MACHINE_METER)
    pytester.makepyfile(test_ddp=DDP_TEST)
    result = pytester.runpytest_subprocess("--green", "-p", "no:cacheprovider", "-W", "error",
                                           timeout=300)
    result.assert_outcomes(passed=1, failed=1)
    data = json.loads((pytester.path / "green-report.json").read_text())
    tests = {t["nodeid"].split("::")[-1]: t for t in data["tests"]}

    job = tests["test_ddp_job"]
    ddp = job["extra"]["distributed"]
    assert ddp["world_size"] == 2 and ddp["backend"] == "gloo"
    assert [r["rank"] for r in ddp["ranks"]] == [0, 1]
    assert all(r["error"] is None and r["device"] == "cpu" for r in ddp["ranks"])
    # FLOPs: each rank counts its own 5 steps of 16 x 32 x 4 forward and weight-gradient work.
    per_step = 2 * 16 * 32 * 4
    assert job["flops"]["forward"] == 2 * 5 * per_step
    assert job["flops"]["backward"] == 2 * 5 * per_step
    assert "summed over 2 ranks" in job["flops"]["method"]
    assert job["examples"] == 2 * 5 * 16
    assert job["metrics"] == [{"name": "replicas_equal", "value": 1.0, "higher_is_better": True}]
    # CPU time covers every process; wall time is the job's once.
    rank_cpu = sum(r["cpu_s"] for r in ddp["ranks"])
    assert ddp["added_cpu_s"] == pytest.approx(rank_cpu)
    assert job["timing"]["cpu_s"] > rank_cpu > 0
    assert job["timing"]["wall_s"] >= max(r["wall_s"] for r in ddp["ranks"])
    parts = {p["domain"]: p for p in job["energy"]["parts"]}
    # Process-scope estimates include the ranks; the CPU estimate is CPU seconds x W/thread.
    watts = ddp["added_energy_j"]["cpu"] / rank_cpu
    assert parts["cpu"]["energy_j"] == pytest.approx(job["timing"]["cpu_s"] * watts, rel=0.02)
    assert ddp["added_energy_j"]["ram"] > 0
    # The machine-wide counter is read by the parent only, at its window's two edges.
    assert parts["machine"]["energy_j"] == pytest.approx(1.5)
    assert ddp["machine_scope"] == ["machine (fake-counter)"]

    failed = tests["test_failing_rank"]
    assert failed["outcome"] == "failed"
    ranks = failed["extra"]["distributed"]["ranks"]
    assert "rank failed on purpose" in ranks[1]["error"]
    assert failed["flops"]["total"] > 0  # a failed job still cost something, and says so
    assert failed["timing"]["cpu_s"] > sum(r["cpu_s"] for r in ranks)


def test_gpus_are_matched_by_uuid_and_shared_ones_read_once() -> None:
    domains = ["cpu", "ram", "gpu:GPU-aaaa-1111", "gpu:GPU-bbbb-2222"]
    match = match_gpus({0: "aaaa-1111", 1: "GPU-bbbb-2222", 2: "aaaa-1111", 3: None}, domains)
    assert match.domains == {"gpu:GPU-aaaa-1111": [0, 2], "gpu:GPU-bbbb-2222": [1]}
    assert match.unread == {}
    hidden = match_gpus({0: "cccc-3333"}, domains)  # e.g. CUDA_VISIBLE_DEVICES differs
    assert hidden.domains == {} and hidden.unread == {"GPU-cccc-3333": [0]}


def test_rank_recorder_is_inert_outside_a_rank() -> None:
    green = rank_recorder()
    assert isinstance(green, RankRecorder) and not green.enabled
    green.examples(3)
    green.flops(10)
    assert green.model(object(), object()) is None
    with pytest.raises(ConfigError, match="calls must be an integer >= 0, got -1"):
        green.model(object(), object(), calls=-1)


def test_spawn_arguments_are_validated() -> None:
    from pytest_greennlp.distributed import spawn

    with pytest.raises(ConfigError, match="nprocs must be a positive integer, got 0"):
        spawn(None, print, nprocs=0)
    with pytest.raises(ConfigError, match="args must be a tuple, got list"):
        spawn(None, print, [1])  # type: ignore[arg-type]
