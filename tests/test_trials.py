"""Trial import: CSV, JSON, Optuna and Ray Tune sources, one-line errors, the CLI."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from pytest_greennlp import cli
from pytest_greennlp.errors import ConfigError, ReportError
from pytest_greennlp.records import Trial, TrialCost
from pytest_greennlp.trials import (
    COST_KEYS,
    TRIALS_FORMAT,
    guess_format,
    read_csv,
    read_json,
    read_optuna,
    read_ray_tune,
    read_trials,
    record_trials,
    trials_to_dict,
    write_trials,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# --- CSV --------------------------------------------------------------------------------


def test_csv_rows_become_trials_with_failed_and_stopped_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "lr.csv",
                 "score,status,cost,seed,config.lr,config.opt\n"
                 "0.71,ok,12.5,1,0.001,adam\n"
                 ",,30,2,0.1,sgd\n"
                 "0.55,pruned,4,3,0.01,adam\n"
                 "\n"
                 "nan,,1.5,,,\n")
    trials = read_csv(path, group="lr")
    assert [t.status for t in trials] == ["ok", "failed", "stopped", "failed"]
    assert [t.score for t in trials] == [0.71, None, 0.55, None]
    assert trials[0] == Trial("lr", 0.71, "ok", TrialCost(wall_s=12.5),
                              {"lr": 0.001, "opt": "adam"}, seed=1)
    assert trials[1].cost.wall_s == 30.0 and trials[1].config == {"lr": 0.1, "opt": "sgd"}
    assert trials[3].config == {} and trials[3].seed is None


def test_csv_cost_columns_cost_unit_groups_and_json_config(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv",
                 "group,score,cost,measured_j,config\n"
                 'a,1.5,1e12,3.5,"{""layers"": 2}"\n'
                 "b,2.5,2e12,,\n")
    trials = read_csv(path, cost_unit="flops", higher_is_better=False)
    assert [t.group for t in trials] == ["a", "b"]
    assert trials[0].cost == TrialCost(flops=10**12, measured_j=3.5)
    assert isinstance(trials[0].cost.flops, int)
    assert trials[0].config == {"layers": 2}
    assert not trials[1].higher_is_better


def test_csv_score_column_can_be_renamed(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "accuracy,wall_s\n0.9,3\n")
    (trial,) = read_csv(path, group="g", score_column="accuracy")
    assert trial.score == 0.9 and trial.cost.wall_s == 3.0


@pytest.mark.parametrize(("text", "where", "fragment"), [
    ("score,wall_s\n0.5,1\nabc,2\n", ":3:", "score 'abc' is not a number"),
    ("score,wall_s\n0.5,-1\n", ":2:", "cost 'wall_s' must be >= 0"),
    ("score,status\n0.5,finished\n", ":2:", "status 'finished' is not one of ok, failed, stopped"),
    ("score,seed\n0.5,1.5\n", ":2:", "seed '1.5' is not an integer"),
    ("score,config\n0.5,{oops\n", ":2:", "config '{oops' is not a JSON object"),
    ("score,flops\n0.5,1.5\n", ":2:", "cost 'flops' must be an integer"),
    ("score,wall_s\n0.5,1\n0.6\n", ":3:", "has 1 fields, the header has 2"),
    ("score,wal_s\n0.5,1\n", ":1:", "unknown column 'wal_s'"),
    ("score,score\n0.5,1\n", ":1:", "column 'score' appears twice"),
    ("accuracy\n0.5\n", ":1:", "has no 'score' column (columns: accuracy)"),
    ("", ":1:", "is empty"),
    ("score,inf\n", ":1:", "unknown column 'inf'"),
    ("score\ninf\n", ":2:", "score 'inf' is not finite"),
    ("score,cost,wall_s\n0.5,1,1\n", ":1:", "has both a 'cost' column and a 'wall_s' column"),
])
def test_malformed_csv_is_one_line_naming_file_and_line(tmp_path: Path, text: str, where: str,
                                                        fragment: str) -> None:
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(ReportError) as exc:
        read_csv(path, group="g")
    message = one_line(exc)
    assert message.startswith(f"{path}{where} ")
    assert fragment in message


def test_csv_without_a_group_and_bad_arguments_are_config_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "score\n0.5\n")
    with pytest.raises(ConfigError, match="no group column"):
        read_csv(path)
    with pytest.raises(ConfigError, match="cost_unit must be one of"):
        read_csv(path, group="g", cost_unit="hours")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="group must be a non-empty string"):
        read_csv(path, group=" ")
    with pytest.raises(ReportError, match="no such file"):
        read_csv(tmp_path / "missing.csv", group="g")
    with pytest.raises(ReportError, match="is a directory"):
        read_csv(tmp_path, group="g")


# --- JSON -------------------------------------------------------------------------------


def test_json_rows_list_and_trials_wrapper(tmp_path: Path) -> None:
    rows = [
        {"score": 0.8, "cost": {"wall_s": 2.0, "flops": 5}, "config": {"lr": 0.1}, "seed": 7},
        {"score": None, "cost": 3.0},
        {"score": 0.6, "status": "stopped", "group": "other", "config.depth": 4},
    ]
    listed = read_json(write(tmp_path / "a.json", json.dumps(rows)), group="lr")
    wrapped = read_json(write(tmp_path / "b.json", json.dumps({"trials": rows})), group="lr")
    assert listed == wrapped
    assert listed[0] == Trial("lr", 0.8, "ok", TrialCost(wall_s=2.0, flops=5), {"lr": 0.1}, 7)
    assert listed[1].status == "failed" and listed[1].cost.wall_s == 3.0
    assert listed[2].group == "other" and listed[2].config == {"depth": 4}
    assert listed[2].status == "stopped"


def test_json_errors_name_the_line_of_the_row(tmp_path: Path) -> None:
    text = '{"trials": [\n  {"score": 0.5},\n  {"score": 0.6,\n   "cost": -1}\n]}\n'
    path = write(tmp_path / "t.json", text)
    with pytest.raises(ReportError) as exc:
        read_json(path, group="g")
    assert one_line(exc) == f"{path}:3: cost 'wall_s' must be >= 0, got -1"
    path = write(tmp_path / "u.json", '[\n {"score": 1},\n {"score": 2, "colour": 1}\n]')
    with pytest.raises(ReportError) as exc:
        read_json(path, group="g")
    assert one_line(exc).startswith(f"{path}:3: unknown key 'colour'")
    path = write(tmp_path / "v.json", '[\n {"score": 1},\n {"cost": 2}\n]')
    with pytest.raises(ReportError, match=r"v\.json:3: missing key 'score'"):
        read_json(path, group="g")
    path = write(tmp_path / "w.json", '[\n {"score": 1},\n 5\n]')
    with pytest.raises(ReportError, match=r"w\.json:3: expected a trial object, got 5"):
        read_json(path, group="g")
    path = write(tmp_path / "x.json", '{"trials": [],\n "extra": 1}')
    with pytest.raises(ReportError, match="unknown top-level key 'extra'"):
        read_json(path, group="g")


@pytest.mark.parametrize(("text", "fragment"), [
    ('[\n {"score": 1},\n {"score": 2\n]', ":4: is not valid JSON"),
    ('{"score": 1}', ": is not a trials file"),
    ("", ":1: is not valid JSON"),
])
def test_malformed_json_is_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path / "t.json", text)
    with pytest.raises(ReportError) as exc:
        read_json(path, group="g")
    assert one_line(exc).startswith(f"{path}{fragment}")


def test_json_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", '{"score": 0.5, "wall_s": 1}\n\n{"score": null}\n')
    trials = read_json(path, group="g")
    assert [t.status for t in trials] == ["ok", "failed"]
    path = write(tmp_path / "u.jsonl", '{"score": 0.5}\n{"score": \n')
    with pytest.raises(ReportError, match=r"u\.jsonl:2: is not valid JSON"):
        read_json(path, group="g")


def test_written_trials_read_back_equal(tmp_path: Path) -> None:
    trials = (
        Trial("lr", 0.5, "ok", TrialCost(wall_s=1.0, flops=10), {"lr": 0.1, "tags": ["a"]}, 3),
        Trial("lr", None, "failed", TrialCost(measured_j=2.0), higher_is_better=False),
        Trial("lr", 0.4, "stopped"),
    )
    path = write_trials(trials, tmp_path / "out" / "trials.json")
    assert read_json(path) == trials
    document = json.loads(path.read_text())
    assert document == trials_to_dict(trials)
    assert document["format"] == TRIALS_FORMAT and document["version"] == 1


def test_a_bad_trials_file_names_line_and_field(tmp_path: Path) -> None:
    good = trials_to_dict([Trial("lr", 0.5), Trial("lr", 0.6)])
    path = tmp_path / "t.json"
    write_trials([Trial("lr", 0.5), Trial("lr", 0.6)], path)
    path.write_text(path.read_text().replace('"score": 0.6', '"score": "high"'))
    with pytest.raises(ReportError) as exc:
        read_json(path)
    assert one_line(exc) == f"{path}:3: trials[1].score: expected a number, got 'high'"
    document = {**good, "version": 2}
    path.write_text(json.dumps(document))
    with pytest.raises(ReportError, match="has version 2, newer than this version reads"):
        read_json(path)
    path.write_text(json.dumps({**good, "format": "something else"}))
    with pytest.raises(ReportError, match="has format 'something else'"):
        read_json(path)


# --- Ray Tune ---------------------------------------------------------------------------


def ray_trial(root: Path, name: str, results: list[dict[str, Any]], *,
              params: dict[str, Any] | None = None, error: bool = False) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in results))
    if params is not None:
        (folder / "params.json").write_text(json.dumps(params))
    if error:
        (folder / "error.txt").write_text("Traceback ...\nRuntimeError: out of memory\n")
    return folder


def result(iteration: int, acc: float, total_s: float, **extra: Any) -> dict[str, Any]:
    return {"eval": {"acc": acc}, "loss": 1 - acc, "training_iteration": iteration,
            "time_this_iter_s": 1.0, "time_total_s": total_s, "done": False,
            "trial_id": "abc", "config": {"lr": 0.0}, **extra}


@pytest.fixture
def ray_folder(tmp_path: Path) -> Path:
    root = tmp_path / "tune_lr"
    root.mkdir()
    ray_trial(root, "train_fn_00000_0_lr=0.01", [result(1, 0.6, 10.0), result(2, 0.8, 20.0),
                                                 result(3, 0.7, 30.5)],
              params={"lr": 0.01, "seed": 4})
    ray_trial(root, "train_fn_00001_1_lr=0.1", [result(1, 0.5, 9.0)], params={"lr": 0.1})
    ray_trial(root, "train_fn_00002_2_lr=1.0", [result(1, 0.4, 8.0)], params={"lr": 1.0},
              error=True)
    (root / "experiment_state-2024.json").write_text("{}")
    (root / "basic-variant-state.json").write_text("{}")
    return root


def test_ray_tune_folder(ray_folder: Path) -> None:
    trials = read_ray_tune(ray_folder, metric="eval/acc")
    assert [t.status for t in trials] == ["ok", "stopped", "failed"]
    assert [t.score for t in trials] == [0.7, 0.5, None]
    assert [t.cost.wall_s for t in trials] == [30.5, 9.0, 8.0]
    assert trials[0].config == {"lr": 0.01, "seed": 4} and trials[0].seed == 4
    assert {t.group for t in trials} == {"tune_lr"}
    best = read_ray_tune(ray_folder, metric="eval/acc", scope="all", group="lr")
    assert best[0].score == 0.8 and best[0].group == "lr"
    lowest = read_ray_tune(ray_folder, metric="loss", mode="min", scope="all")
    assert lowest[0].score == pytest.approx(0.2) and not lowest[0].higher_is_better


def test_ray_tune_progress_csv_and_a_trial_that_never_reported(tmp_path: Path) -> None:
    root = tmp_path / "exp"
    (root / "t0").mkdir(parents=True)
    (root / "t0" / "progress.csv").write_text(
        "eval/acc,training_iteration,time_total_s,config/lr\n0.5,1,2.0,0.1\n0.75,2,4.0,0.1\n")
    (root / "t1").mkdir()
    (root / "t1" / "params.json").write_text('{"lr": 0.3}')
    trials = read_ray_tune(root, metric="eval/acc")
    assert [(t.status, t.score) for t in trials] == [("ok", 0.75), ("stopped", None)]
    assert trials[0].config == {"lr": 0.1} and trials[0].cost.wall_s == 4.0
    assert trials[1].config == {"lr": 0.3}


def test_ray_tune_errors(ray_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError) as exc:
        read_ray_tune(ray_folder, metric="accuracy")
    assert "no trial reported metric 'accuracy' (reported: eval/acc, loss," in one_line(exc)
    result_file = ray_folder / "train_fn_00001_1_lr=0.1" / "result.json"
    result_file.write_text(json.dumps(result(1, 0.5, 9.0)) + "\n{oops\n")
    with pytest.raises(ReportError) as exc:
        read_ray_tune(ray_folder, metric="eval/acc")
    assert one_line(exc).startswith(f"{result_file}:2: is not valid JSON")
    result_file.write_text(json.dumps({**result(1, 0.5, 9.0), "eval": {"acc": "high"}}) + "\n")
    with pytest.raises(ReportError, match=r"result\.json:1: metric 'eval/acc' 'high' is not a"):
        read_ray_tune(ray_folder, metric="eval/acc")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="has no Ray Tune trial folders"):
        read_ray_tune(tmp_path / "empty", metric="acc")
    with pytest.raises(ReportError, match="no such folder"):
        read_ray_tune(tmp_path / "nowhere", metric="acc")
    with pytest.raises(ConfigError, match="mode must be 'max' or 'min'"):
        read_ray_tune(ray_folder, metric="acc", mode="maximize")  # type: ignore[arg-type]


# --- Optuna -----------------------------------------------------------------------------


def fake_trial(number: int, state: str, values: list[float] | None, **kw: Any) -> Any:
    start = datetime(2024, 5, 1, 10, 0, 0)
    return SimpleNamespace(
        number=number, state=SimpleNamespace(name=state), values=values,
        params=kw.get("params", {"lr": 0.1 * (number + 1)}), user_attrs=kw.get("attrs", {}),
        datetime_start=start, datetime_complete=start + timedelta(seconds=2.5 * (number + 1)),
        intermediate_values=kw.get("intermediate", {}),
    )


class FakeStudy:
    """What `read_optuna` uses of an ``optuna.Study``; the real one is tested below."""

    study_name = "search"
    directions: ClassVar[list[Any]] = [SimpleNamespace(name="MINIMIZE")]

    def get_trials(self, deepcopy: bool = True) -> list[Any]:
        assert deepcopy is False
        return [
            fake_trial(2, "FAIL", None),
            fake_trial(0, "COMPLETE", [0.31], attrs={"flops": 1e9, "seed": 5}),
            fake_trial(1, "PRUNED", None, intermediate={0: 0.9, 3: 0.7}),
            fake_trial(3, "RUNNING", None),
            fake_trial(4, "COMPLETE", [0.25], attrs={"wall_s": 1.0}),
        ]


def test_optuna_study_object_without_importing_optuna() -> None:
    trials = read_optuna(FakeStudy())
    assert [t.status for t in trials] == ["ok", "stopped", "failed", "ok"]
    assert [t.score for t in trials] == [0.31, 0.7, None, 0.25]
    assert [t.cost.wall_s for t in trials] == [2.5, 5.0, 7.5, 1.0]
    assert trials[0].cost.flops == 10**9 and trials[0].seed == 5
    assert all(not t.higher_is_better and t.group == "search" for t in trials)
    assert read_optuna(FakeStudy(), group="lr")[0].group == "lr"
    with pytest.raises(ConfigError, match="has 1 objective"):
        read_optuna(FakeStudy(), objective=1)


def test_optuna_bad_user_attribute_is_one_line() -> None:
    study = FakeStudy()
    study.get_trials = lambda deepcopy=True: [  # type: ignore[method-assign]
        fake_trial(0, "COMPLETE", [0.5], attrs={"flops": "lots"})]
    with pytest.raises(ReportError) as exc:
        read_optuna(study)
    assert one_line(exc) == "optuna study 'search', trial 0: cost 'flops' 'lots' is not a number"


def test_optuna_storage(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = tmp_path / "study.db"
    url = f"sqlite:///{path}"
    study = optuna.create_study(study_name="lr", storage=url, direction="maximize")
    for number, (state, value) in enumerate([("COMPLETE", 0.6), ("PRUNED", None),
                                             ("FAIL", None), ("COMPLETE", 0.9)]):
        trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1.0)})
        trial.set_user_attr("flops", 1000 * (number + 1))
        if state == "PRUNED":
            trial.report(0.4, step=2)
        study.tell(trial, value, state=getattr(optuna.trial.TrialState, state))
    for source in (url, path, str(path)):
        trials = read_trials(source)
        assert [t.status for t in trials] == ["ok", "stopped", "failed", "ok"]
        assert [t.score for t in trials] == [0.6, 0.4, None, 0.9]
        assert [t.cost.flops for t in trials] == [1000, 2000, 3000, 4000]
        assert all(t.higher_is_better and t.group == "lr" for t in trials)
        assert all(t.cost.wall_s is not None and t.cost.wall_s >= 0 for t in trials)
    with pytest.raises(ConfigError, match="the study's direction is not 'min'"):
        read_trials(url, higher_is_better=False)
    optuna.create_study(study_name="other", storage=url)
    with pytest.raises(ConfigError, match=r"holds 2 studies \('lr', 'other'\); name one"):
        read_trials(url)
    assert len(read_trials(url, study_name="lr")) == 4
    with pytest.raises(ConfigError, match="no study 'nope'"):
        read_trials(url, study_name="nope")
    with pytest.raises(ReportError, match="no such file"):
        read_trials(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()


# --- any source, the fixture, the CLI ---------------------------------------------------


def test_guess_format(tmp_path: Path) -> None:
    assert guess_format("sqlite:///x.db") == "optuna"
    assert guess_format("study.sqlite3") == "optuna"
    assert guess_format(tmp_path) == "ray"
    assert guess_format("t.CSV") == "csv"
    assert guess_format("t.jsonl") == "json"
    with pytest.raises(ConfigError, match="cannot tell the format"):
        guess_format("t.txt")
    with pytest.raises(ConfigError, match="needs the metric"):
        read_trials(tmp_path)


def test_record_trials_passes_file_costs_to_green() -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []

    class Green:
        def trial(self, score: float | None, **kwargs: Any) -> None:
            calls.append((score, kwargs))

    trials = [Trial("lr", 0.5, cost=TrialCost(wall_s=2.0, flops=7), config={"a": 1}, seed=3),
              Trial("lr", None, "failed", higher_is_better=False)]
    assert record_trials(Green(), trials) == 2  # type: ignore[arg-type]
    assert calls[0] == (0.5, {"cost": {"wall_s": 2.0, "flops": 7}, "config": {"a": 1}, "seed": 3,
                              "group": "lr", "status": "ok", "higher_is_better": True})
    assert calls[1][1]["cost"] == {} and calls[1][1]["status"] == "failed"
    assert set(COST_KEYS) == set(TrialCost.__dataclass_fields__)


def test_record_trials_in_a_green_test(pytester: pytest.Pytester) -> None:
    pytester.makefile(".csv", lr="score,wall_s,config.lr\n0.7,3,0.1\n,5,1.0\n")
    pytester.makepyfile("""
        import pytest
        from pytest_greennlp.trials import read_csv, record_trials

        @pytest.mark.green_train
        def test_sweep(green):
            assert record_trials(green, read_csv("lr.csv", group="lr")) == 2
    """)
    result = pytester.runpytest("--green", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "green-report.json").read_text())
    trials = report["tests"][0]["trials"]
    assert [(t["score"], t["status"], t["cost"]["wall_s"]) for t in trials] == [
        (0.7, "ok", 3.0), (None, "failed", 5.0)]


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_trials_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path / "lr.csv", "score,cost\n0.7,3\n,5\n0.6,2\n")
    out_file = tmp_path / "trials.json"
    code, out, err = run(capsys, "trials", "import", source, "--group", "lr", "--out", out_file)
    assert code == cli.EXIT_OK, err
    assert out.strip() == (f"greennlp: imported 3 trial(s) (2 ok, 1 failed, 0 stopped) of group "
                           f"'lr' from {source} into {out_file}")
    assert [t.score for t in read_json(out_file)] == [0.7, None, 0.6]
    code, out, err = run(capsys, "trials", "import", source, "--group", "lr", "--out", "-",
                         "--mode", "min", "--cost-unit", "flops")
    assert code == cli.EXIT_OK
    document = json.loads(out)
    assert document["trials"][0]["cost"]["flops"] == 3
    assert document["trials"][0]["higher_is_better"] is False
    assert err.startswith("greennlp: imported 3 trial(s)")


def test_cli_trials_import_errors_are_one_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path / "lr.csv", "score,cost\n0.7,3\nbad,5\n")
    code, out, err = run(capsys, "trials", "import", source, "--group", "lr", "--out",
                         tmp_path / "t.json")
    assert code == cli.EXIT_USAGE and out == ""
    assert err == f"greennlp: error: {source}:3: score 'bad' is not a number\n"
    code, _, err = run(capsys, "trials", "import", source, "--out", tmp_path / "t.json")
    assert code == cli.EXIT_USAGE and err.count("\n") == 1 and "--group NAME" in err
    code, _, err = run(capsys, "trials", "import", tmp_path, "--out", tmp_path / "t.json")
    assert code == cli.EXIT_USAGE and "--metric NAME" in err
    code, _, err = run(capsys, "trials", "import", source)
    assert code == cli.EXIT_USAGE and "--out" in err and err.count("\n") == 1
    code, _, err = run(capsys, "trials")
    assert code == cli.EXIT_USAGE and err.count("\n") == 1
