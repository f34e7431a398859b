"""Tune the learning rate of the MNIST-1D MLP by hypergradient and by grid search; prints JSON.

Both methods tune the same thing: the constant learning rate of plain SGD (batch 128, a fixed batch
order, ``--steps`` steps from one fixed initialisation) for the two-layer MLP 40 - 100 - ReLU - 10 (the
``mlp`` of ``nablab train``), judged by the cross-entropy on a validation split (the last 500 of the
4000 training signals); the chosen rate is then reported with the test accuracy (1000 signals).

* hypergradient: ``nablab.hyper.tune_lr`` -- Adam on log(lr), each meta-step one training run with
  the forward-mode hypergradient d(validation loss)/d(lr) -- then one plain run at the best rate seen;
* grid search: one plain run per rate of a log-spaced grid, the best validation loss wins;
* grid search at equal time: the same, with as many grid points as fit in the hypergradient's time.

Time is wall-clock seconds on this machine (it counts every training run each method makes).
MNIST-1D is generated locally (``nablab.data.load_mnist1d``; never downloaded).

    python benchmarks/hyper_tune_mnist1d.py                   # 300 steps, 20 meta-steps, 8 grid rates
    python benchmarks/hyper_tune_mnist1d.py --quick           # 100 steps, 6 meta-steps, 5 grid rates
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from nablab import nn
from nablab.hyper import tune_lr
from nablab.hyper.unrolled import Unrolled
from nablab.nn import functional as F
from nablab.optim import sgd


def load_data(seed: int = 42) -> dict:
    """MNIST-1D from nablab's loader, or straight from the ``mnist1d`` package's generator."""
    try:
        from nablab.data import load_mnist1d

        return load_mnist1d(seed=seed)
    except ImportError:
        import mnist1d.data as m1d

        args = m1d.get_dataset_args()
        args.seed = seed
        raw = m1d.make_dataset(args)
        return {"x_train": np.asarray(raw["x"], float), "y_train": np.asarray(raw["y"], np.int64),
                "x_test": np.asarray(raw["x_test"], float), "y_test": np.asarray(raw["y_test"], np.int64)}


def setup(steps: int, batch: int, seed: int):
    """Data splits, the model, its initial parameters, the batches and the two losses."""
    data = load_data()
    x, y = data["x_train"], data["y_train"]
    mean, std = x[:-500].mean(), x[:-500].std()
    norm = lambda a: (a - mean) / std  # noqa: E731
    x_tr, y_tr, x_val, y_val = norm(x[:-500]), y[:-500], norm(x[-500:]), y[-500:]
    x_te, y_te = norm(data["x_test"]), data["y_test"]
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(40, 100, rng=rng), nn.ReLU(), nn.Linear(100, 10, rng=rng))
    params0 = {k: v.numpy() for k, v in model.named_parameters()}
    order = np.concatenate([rng.permutation(len(x_tr)) for _ in range(steps * batch // len(x_tr) + 1)])
    batches = [(x_tr[order[i * batch:(i + 1) * batch]], y_tr[order[i * batch:(i + 1) * batch]]) for i in range(steps)]

    def train_loss(p, b):
        return F.cross_entropy(nn.functional_call(model, p, b[0]), b[1])

    def val_loss(p):
        return F.cross_entropy(nn.functional_call(model, p, x_val), y_val)

    def accuracy(p, xs, ys):
        return F.accuracy(nn.functional_call(model, p, xs), ys)

    return dict(params0=params0, batches=batches, train_loss=train_loss, val_loss=val_loss, accuracy=accuracy,
                val=(x_val, y_val), test=(x_te, y_te), model=model)


def train(s, lr, steps):
    """Plain SGD at ``lr``: the final parameters (nablab's optimizer, no tracing of lr)."""
    run = Unrolled(s["train_loss"], steps, lambda h: sgd(h["lr"]), val_loss=s["val_loss"], batches=s["batches"])
    params, _ = run.run({"lr": np.float64(lr)}, s["params0"])
    return params


def evaluate(s, params):
    return {"val_loss": float(s["val_loss"](params)), "val_accuracy": s["accuracy"](params, *s["val"]),
            "test_accuracy": s["accuracy"](params, *s["test"])}


def by_hypergradient(s, steps, meta_steps, lr0, meta_lr):
    t0 = time.perf_counter()
    result = tune_lr(s["train_loss"], s["params0"], lr0, steps, meta_steps=meta_steps, meta_lr=meta_lr,
                     val_loss=s["val_loss"], batches=s["batches"], mode="forward", progress=False)
    tuned = time.perf_counter() - t0
    params = train(s, result.lr, steps)
    total = time.perf_counter() - t0
    return {"lr": result.lr, **evaluate(s, params), "seconds": total, "seconds tuning": tuned,
            "training runs": meta_steps + 1,
            "history": [{k: e[k] for k in ("lr", "loss", "d_lr", "seconds")} for e in result.history]}


def by_grid(s, steps, lrs):
    t0 = time.perf_counter()
    rows = []
    for lr in lrs:
        params = train(s, lr, steps)
        loss = float(s["val_loss"](params))
        rows.append({"lr": float(lr), "val_loss": loss if np.isfinite(loss) else float("inf"), "params": params})
    best = min(rows, key=lambda r: r["val_loss"])
    out = {"lr": best["lr"], **evaluate(s, best["params"])}
    out["seconds"] = time.perf_counter() - t0
    out["training runs"] = len(lrs)
    out["grid"] = [{"lr": r["lr"], "val_loss": r["val_loss"]} for r in rows]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="SGD steps per training run")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--meta-steps", type=int, default=20)
    parser.add_argument("--meta-lr", type=float, default=0.5, help="Adam step on log(lr)")
    parser.add_argument("--lr0", type=float, default=0.01, help="where the hypergradient search starts")
    parser.add_argument("--grid", type=float, nargs="+", default=list(np.logspace(-2, 0.5, 8)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="also write the JSON to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.meta_steps, args.grid = 100, 6, list(np.logspace(-2, 0.5, 5))
    if args.steps < 1 or args.meta_steps < 1 or args.batch < 1:
        raise SystemExit(f"--steps {args.steps}, --meta-steps {args.meta_steps}, --batch {args.batch}: "
                         "all must be >= 1")
    if min(args.grid) <= 0 or args.lr0 <= 0:
        raise SystemExit(f"learning rates must be positive: --lr0 {args.lr0}, --grid {args.grid}")
    s = setup(args.steps, args.batch, args.seed)
    hyper = by_hypergradient(s, args.steps, args.meta_steps, args.lr0, args.meta_lr)
    grid = by_grid(s, args.steps, args.grid)
    per_run = grid["seconds"] / len(args.grid)
    points = max(len(args.grid), int(hyper["seconds"] / per_run))
    same_time = by_grid(s, args.steps, np.logspace(np.log10(min(args.grid)), np.log10(max(args.grid)), points))
    report = {
        "benchmark": "hyper_tune_mnist1d",
        "setup": {"model": "Linear(40, 100) - ReLU - Linear(100, 10)", "optimizer": "plain SGD",
                  "steps": args.steps, "batch": args.batch, "train/val/test": [3500, 500, 1000],
                  "selection": "validation cross-entropy after the run", "seed": args.seed},
        "hypergradient": hyper, "grid search": grid, "grid search at equal time": same_time,
        "forward-mode run / plain run (time)": (hyper["seconds tuning"] / args.meta_steps) / per_run,
        "python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
        "load average": os.getloadavg()[0],
    }
    print(f"{'method':15s} {'lr':>8s} {'val loss':>9s} {'val acc':>8s} {'test acc':>9s} {'runs':>5s} {'seconds':>8s}")
    for name, r in (("hypergradient", hyper), ("grid search", grid), ("grid, same time", same_time)):
        print(f"{name:15s} {r['lr']:8.4f} {r['val_loss']:9.4f} {r['val_accuracy']:8.3f} {r['test_accuracy']:9.3f} "
              f"{r['training runs']:5d} {r['seconds']:8.1f}")
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
