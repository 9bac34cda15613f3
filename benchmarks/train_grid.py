#!/usr/bin/env python3
"""AB's default grid (720 configurations x 5 folds): abrunnerd's trainer vs a naive baseline, side by side.

The naive baseline does what Gaia does per cell: fit the fold's cleaner + normalize on
the preprocessed features, train a plain RBF/poly ``SVC`` on the features (libsvm
computes its own kernel), predict the fold; one process, no kernel reuse.  Ours: the
trainer with precomputed kernels shared by every C, over ``--workers`` processes.

Datasets: ``ab-real-1`` (../shared/data, 180 recordings) and ``synthetic-2000``: 2,000
recordings with AB's real descriptor layout, made (seeded) from ab-real-1's documents:
each value a random blend of a document of its class and one of another class (weight
0.45-1), times lognormal noise (sigma 0.15), so classes overlap; strings kept.  On the synthetic set the baseline is
timed on a seeded random sample of cells (``--naive-sample``) and extrapolated to the
grid; its per-cell results are checked against ours cell by cell.

Each measurement runs in its own process so peak RSS is its own.  Usage:

    .venv/bin/python benchmarks/train_grid.py [--datasets ab-real-1,synthetic-2000] [--workers 2]
    .venv/bin/python benchmarks/train_grid.py --memory 5000     # peak RSS vs the memory formula
"""
import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from typing import Any, Dict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
AB_REAL_1 = os.path.join(os.path.dirname(REPO), "shared", "data", "ab-real-1")
sys.path.insert(0, REPO)


def _blend(main: Any, other: Any, w: float, rng: random.Random, scale: float) -> Any:
    """``w * main + (1 - w) * other`` leaf by leaf (where shapes agree), times lognormal noise."""
    if isinstance(main, dict):
        return {k: _blend(v, other.get(k) if isinstance(other, dict) else None, w, rng, scale)
                for k, v in main.items()}
    if isinstance(main, list):
        if not isinstance(other, list) or len(other) != len(main):
            other = [None] * len(main)
        return [_blend(v, o, w, rng, scale) for v, o in zip(main, other)]
    if isinstance(main, float):
        mixed = w * main + (1 - w) * other if isinstance(other, float) else main
        return mixed * rng.lognormvariate(0.0, scale)
    return main


def load(name: str, seed: int = 1):
    from abrunnerd.trainer import Dataset, load_dataset_dir

    base = load_dataset_dir(AB_REAL_1)
    if name == "ab-real-1":
        return base
    n = int(name.rsplit("-", 1)[1])
    rng = random.Random(seed)
    by_class: Dict[str, list] = {}
    for mbid, cls in sorted(base.groundtruth.items()):
        by_class.setdefault(cls, []).append(mbid)
    classes = sorted(by_class)
    gt, docs = {}, {}
    for i in range(n):
        cls = classes[i % len(classes)]
        template = base.documents[rng.choice(by_class[cls])]
        other = base.documents[rng.choice(by_class[rng.choice([c for c in classes if c != cls])])]
        mbid = "%08x-0000-4000-8000-%012x" % (rng.getrandbits(32), i)
        doc = _blend(template, other, rng.uniform(0.45, 1.0), rng, 0.15)  # overlapping classes
        doc["metadata"] = template["metadata"]  # keep metadata strings/ints realistic
        docs[mbid] = doc
        gt[mbid] = cls
    return Dataset(name, gt, docs, {})


def _rss_mb() -> Dict[str, float]:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {"parent_mb": round(me, 1), "largest_worker_mb": round(kids, 1)}


def child_ours(dataset: str, workers: int) -> Dict[str, Any]:
    from abrunnerd.trainer import TrainOptions, train

    ds = load(dataset)
    t0 = time.monotonic()
    res = train(ds, TrainOptions(seed=42), workers=workers)
    wall = time.monotonic() - t0
    best = res.best
    table = {"%s|%s|%d|%d" % (c.preprocessing, c.kernel, c.c, c.gamma): [c.fold_correct, c.fold_total]
             for c in res.combinations}
    return {"wall": wall, "cells": 3600, "best": [best.preprocessing, best.kernel, best.c, best.gamma],
            "accuracy": res.accuracy, "table": table, "rss": _rss_mb()}


def child_memory(dataset: str, workers: int) -> Dict[str, Any]:
    """Peak RSS of a one-configuration run (the kernel buffers do not depend on the grid's size)."""
    from abrunnerd.trainer import TrainOptions, estimate_peak_memory, train

    ds = load(dataset)
    loaded = _rss_mb()["parent_mb"]
    opts = TrainOptions(c_values=(1,), gamma_values=(-7,), preprocessing_values=("basic",), kernels=("RBF",), seed=42)
    t0 = time.monotonic()
    train(ds, opts, workers=workers)
    est = estimate_peak_memory(len(ds.groundtruth), TrainOptions(), workers=workers) / 1024.0 ** 2
    return {"wall": time.monotonic() - t0, "rss": _rss_mb(), "documents_mb": loaded, "estimate_mb": est}


def child_naive(dataset: str, sample: int) -> Dict[str, Any]:
    import numpy as np
    from sklearn.svm import SVC

    from abrunnerd.trainer import TrainOptions
    from abrunnerd.trainer.cells import fold_features
    from abrunnerd.trainer.result import Combination
    from abrunnerd.trainer.train import choose_best, prepare

    ds = load(dataset)
    opts = TrainOptions(seed=42)
    t0 = time.monotonic()
    prepared = prepare(ds, opts)
    cells = [(p, k, c, g, f) for (p, k, c, g) in opts.combinations() for f in range(opts.nfold)]
    if sample:
        cells = sorted(random.Random(7).sample(cells, sample), key=cells.index)
    results = {}
    for p, k, c, g, f in cells:
        unit = prepared.unit(p, f)
        x_train, x_test = fold_features(unit)  # the fold's cleaner + normalize, refitted per cell
        svc = SVC(C=2.0 ** c, kernel="rbf" if k == "RBF" else "poly", gamma=2.0 ** g, degree=3, coef0=0.0,
                  tol=1e-3, cache_size=100)
        svc.fit(x_train, unit.y[unit.train])
        correct = int(np.sum(svc.predict(x_test) == unit.y[unit.test]))
        results[(p, k, c, g, f)] = (correct, len(unit.test))
    wall = time.monotonic() - t0
    out = {"wall": wall, "cells": len(cells), "rss": _rss_mb(),
           "table": {"%s|%s|%d|%d|%d" % key: list(v) for key, v in results.items()}}
    if not sample:
        combos = []
        for p, k, c, g in opts.combinations():
            folds = [results[(p, k, c, g, f)] for f in range(opts.nfold)]
            combos.append(Combination(p, k, c, g, "ok", sum(a for a, _ in folds), sum(b for _, b in folds)))
        best = choose_best(combos, opts)
        out["best"] = [best.preprocessing, best.kernel, best.c, best.gamma]
    return out


def run_child(args: list) -> Dict[str, Any]:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__)] + args, stdout=subprocess.PIPE,
                          universal_newlines=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(dataset: str, workers: int, sample: int) -> None:
    ours = run_child(["--child", "ours", "--dataset", dataset, "--workers", str(workers)])
    naive = run_child(["--child", "naive", "--dataset", dataset, "--sample", str(sample)])
    total = 3600
    naive_wall = naive["wall"] * (total / float(naive["cells"]))
    agree = sum(1 for key, (correct, n) in naive["table"].items()
                if ours["table"][key.rsplit("|", 1)[0]][0][int(key.rsplit("|", 1)[1])] == correct)
    print("== %s: AB default grid, %d cells (720 configurations x 5 folds), %d worker(s) for ours" %
          (dataset, total, workers))
    print("%-28s %12s %10s %14s %18s" % ("", "wall s", "cells/s", "parent RSS MB", "largest worker MB"))
    print("%-28s %12.1f %10.1f %14.1f %18.1f" % ("abrunnerd trainer", ours["wall"], total / ours["wall"],
                                                  ours["rss"]["parent_mb"], ours["rss"]["largest_worker_mb"]))
    label = "naive baseline" + (" (extrapolated)" if sample else "")
    print("%-28s %12.1f %10.1f %14.1f %18s" % (label, naive_wall, naive["cells"] / naive["wall"],
                                                naive["rss"]["parent_mb"], "-"))
    if sample:
        print("naive timed on %d random cells (seed 7): %.1f s, x %d/%d to the grid" %
              (naive["cells"], naive["wall"], total, naive["cells"]))
    print("speed-up: %.1fx" % (naive_wall / ours["wall"]))
    print("cells with identical correct counts: %d/%d" % (agree, naive["cells"]))
    if "best" in naive:
        print("best configuration: ours %s, naive %s -> %s" % (
            ours["best"], naive["best"], "identical" if ours["best"] == naive["best"] else "DIFFERENT"))
    else:
        print("best configuration (ours): %s at %.2f %%" % (ours["best"], ours["accuracy"]))
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="ab-real-1,synthetic-2000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--naive-sample", type=int, default=60, help="cells timed for the synthetic baseline")
    parser.add_argument("--memory", type=int, metavar="N",
                        help="instead: peak RSS of a synthetic N-recording run vs estimate_peak_memory")
    parser.add_argument("--child", choices=["ours", "naive", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--sample", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "ours":
        print(json.dumps(child_ours(args.dataset, args.workers)))
        return 0
    if args.child == "naive":
        print(json.dumps(child_naive(args.dataset, args.sample)))
        return 0
    if args.child == "memory":
        print(json.dumps(child_memory(args.dataset, args.workers)))
        return 0
    if not os.path.isdir(AB_REAL_1):
        print("needs ../shared/data/ab-real-1 beside the repository", file=sys.stderr)
        return 1
    if args.memory:
        m = run_child(["--child", "memory", "--dataset", "synthetic-%d" % args.memory, "--workers", str(args.workers)])
        total = m["rss"]["parent_mb"] + args.workers * m["rss"]["largest_worker_mb"]
        print("synthetic-%d, %d workers: parent peak %.0f MB (parsed documents alone %.0f MB), largest worker "
              "%.0f MB, parent + workers x worker = %.0f MB; estimate_peak_memory (without documents) %.0f MB"
              % (args.memory, args.workers, m["rss"]["parent_mb"], m["documents_mb"],
                 m["rss"]["largest_worker_mb"], total, m["estimate_mb"]))
        return 0
    for name in args.datasets.split(","):
        compare(name, args.workers, 0 if name == "ab-real-1" else args.naive_sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
