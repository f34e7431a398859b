"""MNIST-1D test accuracy, mean of 3 seeds, nablab beside PyTorch with the same recipe.

    .venv/bin/python benchmarks/train_mnist1d.py [--epochs 200] [--seeds 0,1,2] [--threads 1] [--quick]

The recipe is the MNIST-1D reference training (Adam, learning rate 1e-2,
batch 100, 8000 steps = 200 epochs of the 4000 training signals), float32, for:

- ``logistic``: the softmax classifier (published: 32%);
- ``resmlp``: the dataset's reference MLP, the model of its published 68%;
- ``mlp``: the seeds' two-layer MLP (no published figure; shown for reference);
- ``cnn1d``: the dataset's reference CNN (published: 94%).

For each seed both backends start from the same weights (PyTorch gets a copy of
nablab's) and see the same batches.  Reported: the final test accuracy per seed
and its mean, the target (logistic >= 30%, MLP >= 66%, CNN >= 92%), seconds per
epoch of training steps (evaluation excluded) and the nablab / PyTorch ratio.
NumPy's BLAS and PyTorch use the same number of threads (``--threads``).

JSON goes to stdout, a table to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys


def _args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=200, help="epochs per run (default 200 = 8000 steps)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--models", default="logistic,resmlp,mlp,cnn1d", help="models to train")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay of Adam (default 0)")
    p.add_argument("--threads", type=int, default=1, help="threads for NumPy's BLAS and PyTorch (default 1)")
    p.add_argument("--quick", action="store_true", help="10 epochs, one seed (a smoke run; targets not expected)")
    return p.parse_args()


ARGS = _args() if __name__ == "__main__" else None
if ARGS is not None:  # before NumPy is imported
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from nablab.train import TrainConfig, load_dataset, train  # noqa: E402

PUBLISHED = {"logistic": 0.32, "resmlp": 0.68, "cnn1d": 0.94}
TARGETS = {"logistic": 0.30, "resmlp": 0.66, "cnn1d": 0.92}


def main():
    torch.set_num_threads(ARGS.threads)
    epochs = 10 if ARGS.quick else ARGS.epochs
    seeds = [0] if ARGS.quick else [int(s) for s in ARGS.seeds.split(",")]
    models = [m.strip() for m in ARGS.models.split(",") if m.strip()]
    data = load_dataset("mnist1d", dtype=np.float32)
    start = time.perf_counter()
    load_before = os.getloadavg()
    results = {}
    for model in models:
        row = {"nablab": {"test_acc": [], "s_per_epoch": []}, "torch": {"test_acc": [], "s_per_epoch": []}}
        for seed in seeds:
            for backend in ("nablab", "torch"):
                cfg = TrainConfig(dataset="mnist1d", model=model, optimizer="adam", lr=1e-2,
                                  weight_decay=ARGS.weight_decay, epochs=epochs,
                                  batch_size=100, seed=seed, backend=backend, dtype="float32")
                r = train(cfg, dataset=data)
                row[backend]["test_acc"].append(r.final["test_acc"])
                row[backend]["s_per_epoch"].append(float(np.median(r.epoch_seconds)))
                print(f"  {model:8} seed {seed} {backend:6} test {100 * r.final['test_acc']:.1f}%  "
                      f"{np.median(r.epoch_seconds):.3f} s/epoch", file=sys.stderr, flush=True)
        for backend in ("nablab", "torch"):
            row[backend]["mean_test_acc"] = float(np.mean(row[backend]["test_acc"]))
            row[backend]["mean_s_per_epoch"] = float(np.mean(row[backend]["s_per_epoch"]))
        row["time_ratio_nablab_over_torch"] = row["nablab"]["mean_s_per_epoch"] / row["torch"]["mean_s_per_epoch"]
        if model in TARGETS:
            row["published"] = PUBLISHED[model]
            row["target"] = TARGETS[model]
            row["nablab_meets_target"] = row["nablab"]["mean_test_acc"] >= TARGETS[model]
            row["torch_meets_target"] = row["torch"]["mean_test_acc"] >= TARGETS[model]
        results[model] = row

    doc = {
        "benchmark": "train_mnist1d",
        "recipe": {"optimizer": "adam", "lr": 1e-2, "weight_decay": ARGS.weight_decay, "batch_size": 100, "epochs": epochs,
                   "steps": epochs * 40, "dtype": "float32", "seeds": seeds,
                   "train/test": [len(data.x_train), len(data.x_test)]},
        "threads": ARGS.threads, "torch_num_threads": torch.get_num_threads(), "torch_version": torch.__version__,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "seconds": time.perf_counter() - start,
        "models": results,
    }
    print(json.dumps(doc, indent=2))
    print(f"{'model':9} {'nablab':>8} {'PyTorch':>8} {'target':>7} {'published':>9} {'s/epoch ours':>13} "
          f"{'theirs':>7} {'ratio':>6}", file=sys.stderr)
    for model, row in results.items():
        target = f"{100 * row['target']:.0f}%" if "target" in row else "-"
        published = f"{100 * row['published']:.0f}%" if "published" in row else "-"
        print(f"{model:9} {100 * row['nablab']['mean_test_acc']:7.1f}% {100 * row['torch']['mean_test_acc']:7.1f}% "
              f"{target:>7} {published:>9} {row['nablab']['mean_s_per_epoch']:13.3f} "
              f"{row['torch']['mean_s_per_epoch']:7.3f} {row['time_ratio_nablab_over_torch']:6.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
