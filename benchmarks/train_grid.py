#!/usr/bin/env python3
"""Trainer speed and memory, measured side by side in one run (issue 12's goals).

Default (``ab-real-1``, ../shared/data, 180 recordings): every measurement is a fresh
process, timed whole — interpreter start, imports, reading the documents, training and
the final model, worker processes included (CPU-s of the process and everything it
waited for; peak RSS summed over the process tree, sampled every 50 ms):

* ours, AB's grid (720 configurations x 5 folds = 3,600 fits), ``--workers`` at most;
* ours, one configuration (5 fits + the final model);
* ours and the naive baseline on a one-preprocessing grid (``basic``: 720 fits);
* the naive baseline on AB's grid (skipped with ``--quick``);

next to real Gaia 2.4.6's figures (``gaia-reference/timing.json``).  The naive baseline
does what Gaia does per fit: the fold's cleaner + normalize, a plain RBF/poly ``SVC`` on
the features (libsvm computes its own kernel), one process, no kernel reuse.  Per-fit
correct counts of ours and the naive baseline are compared cell by cell.

    .venv/bin/python benchmarks/train_grid.py [--workers 2] [--quick]
    .venv/bin/python benchmarks/train_grid.py --profile          # where a small job's CPU goes
    .venv/bin/python benchmarks/train_grid.py --memory 10000 --budget-mb 2048   # peak, wall, CPU-s
    .venv/bin/python benchmarks/train_grid.py --memory 2000 --grid basic --budget-mb 2048 --compare-mb 40
    nice -n 19 .venv/bin/python benchmarks/train_grid.py --memory 10000 --grid ab --budget-mb 2048 \
        --workers 1 --time-limit 5700      # a partial run is reported as one, with an extrapolation
    .venv/bin/python benchmarks/train_grid.py --fit-study 10000   # single fits: CPU-s, iterations, cache
    .venv/bin/python benchmarks/train_grid.py --kernel-paths 2000 --grid basic --cell '["basic", "RBF", -5, -7]'
    .venv/bin/python benchmarks/train_grid.py --datasets synthetic-2000 --naive-sample 60

The default run also prints a floor analysis: ours' and the naive baseline's CPU-s by
phase (interpreter, imports, parsing, merge, fits, final model, exit) and the ratio the
shared fixed costs leave reachable.

``synthetic-N``: N recordings with AB's real descriptor layout, made (seeded) from
ab-real-1's documents: each value a random blend of a document of its class and one of
another class (weight 0.45-1), times lognormal noise (sigma 0.15), so classes overlap.
"""
import time

STARTED_CPU = time.process_time()  # the interpreter's start-up, before this script's own imports

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
AB_REAL_1 = os.path.join(os.path.dirname(REPO), "shared", "data", "ab-real-1")
sys.path.insert(0, REPO)

ONE_CONFIG = {"c_values": [11], "gamma_values": [-11], "preprocessing_values": ["gaussianized"]}
ONE_PREPROCESSING = {"preprocessing_values": ["basic"]}  # 2 kernels x 9 C x 8 gamma x 5 folds = 720 fits
SMALL_GRID = {"c_values": [1, 5, 9], "gamma_values": [-9, -5, -1], "preprocessing_values": ["basic"]}  # 90 fits
GOALS = {"ab_grid_cpu": 6.0, "one_config_cpu": 1.5, "one_prep_ratio": 20.0}


# --- datasets -----------------------------------------------------------------------------

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


# --- measuring a child process --------------------------------------------------------------

def _tree_rss(root: int) -> int:
    """Bytes resident in ``root`` and all its descendants now."""
    parents: Dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, "rb") as f:
                    parents[int(entry)] = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for pid in tree:
        try:
            with open("/proc/%d/statm" % pid, "rb") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    return total


def run_child(args: List[str]) -> Dict[str, Any]:
    """Run this script as a child; its result plus CPU-s (it and its waited-for children), wall, peak tree RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__)] + args, stdout=subprocess.PIPE,
                            universal_newlines=True)
    peak = {"bytes": 0}

    def sample() -> None:
        while proc.poll() is None:
            peak["bytes"] = max(peak["bytes"], _tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    wall = time.monotonic() - t0
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit("child %s failed with exit status %d" % (" ".join(args), proc.returncode))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.strip().splitlines()[-1])
    result["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["wall_s"] = wall
    result["peak_tree_mb"] = peak["bytes"] / 1024.0 ** 2
    return result


# --- the children -------------------------------------------------------------------------------

def _table(res) -> Dict[str, Any]:
    return {"%s|%s|%d|%d" % (c.preprocessing, c.kernel, c.c, c.gamma): c.fold_correct for c in res.combinations}


class Phases:
    """CPU-s of this process per phase (``mark`` closes the phase running since the last mark)."""

    def __init__(self) -> None:
        self.marks = [["interpreter start + benchmark script", STARTED_CPU]]
        self.last = STARTED_CPU

    def mark(self, label: str) -> None:
        now = time.process_time()
        self.marks.append([label, now - self.last])
        self.last = now


def _import_fitting_stack(phases: Phases) -> None:
    import numpy  # noqa: F401
    import sklearn.svm  # noqa: F401  (ours imports it at its first fit; here it is counted on its own)

    import abrunnerd.trainer  # noqa: F401
    phases.mark("import numpy, scikit-learn, abrunnerd.trainer")


def child_ours(dataset: str, workers: int, options: Dict[str, Any]) -> Dict[str, Any]:
    from abrunnerd.train_worker import single_threaded_blas

    single_threaded_blas()  # as the training process does, before numpy is imported
    phases = Phases()
    _import_fitting_stack(phases)
    from abrunnerd.trainer import TrainOptions, train

    ds = load(dataset)
    phases.mark("read + parse the JSON documents")
    opts = TrainOptions.from_job_options(options, seed=42)
    t0 = time.monotonic()
    seen = {"stage": None}

    def progress(p: Any) -> None:
        if p.stage != seen["stage"]:
            if p.stage == "training":
                phases.mark("merge + preprocessing")
            elif p.stage == "final":
                phases.mark("cross-validation fits (this process)")
            elif p.stage == "done":
                phases.mark("final model (probabilities)")
            seen["stage"] = p.stage

    res = train(ds, opts, workers=workers, progress=progress)
    best = res.best
    return {"train_wall_s": time.monotonic() - t0, "fits": len(opts.combinations()) * opts.nfold,
            "best": [best.preprocessing, best.kernel, best.c, best.gamma], "accuracy": res.accuracy,
            "table": _table(res), "phases": phases.marks}


def child_naive(dataset: str, options: Dict[str, Any], sample: int) -> Dict[str, Any]:
    phases = Phases()
    _import_fitting_stack(phases)
    import numpy as np
    from sklearn.svm import SVC

    from abrunnerd.trainer import TrainOptions
    from abrunnerd.trainer.cells import fold_features
    from abrunnerd.trainer.result import Combination
    from abrunnerd.trainer.train import choose_best, prepare

    ds = load(dataset)
    phases.mark("read + parse the JSON documents")
    opts = TrainOptions.from_job_options(options, seed=42)
    t0 = time.monotonic()
    prepared = prepare(ds, opts)
    phases.mark("merge + preprocessing")
    cells = [(p, k, c, g, f) for (p, k, c, g) in opts.combinations() for f in range(opts.nfold)]
    if sample:
        cells = sorted(random.Random(7).sample(cells, sample), key=cells.index)
    results = {}
    for p, k, c, g, f in cells:
        unit = prepared.unit(p, f)
        x_train, x_test = fold_features(unit)  # the fold's cleaner + normalize, refitted per fit
        svc = SVC(C=2.0 ** c, kernel="rbf" if k == "RBF" else "poly", gamma=2.0 ** g, degree=3, coef0=0.0,
                  tol=1e-3, cache_size=100)
        svc.fit(x_train, unit.y[unit.train])
        correct = int(np.sum(svc.predict(x_test) == unit.y[unit.test]))
        results[(p, k, c, g, f)] = (correct, len(unit.test))
    phases.mark("cross-validation fits (this process)")
    out = {"train_wall_s": time.monotonic() - t0, "fits": len(cells), "phases": phases.marks,
           "table": {"%s|%s|%d|%d|%d" % key: v[0] for key, v in results.items()}}
    if not sample:
        combos = []
        for p, k, c, g in opts.combinations():
            folds = [results[(p, k, c, g, f)] for f in range(opts.nfold)]
            combos.append(Combination(p, k, c, g, "ok", sum(a for a, _ in folds), sum(b for _, b in folds)))
        best = choose_best(combos, opts)
        out["best"] = [best.preprocessing, best.kernel, best.c, best.gamma]
    return out


def bundle_path(dataset: str, options: Dict[str, Any]) -> str:
    """Where the synthetic dataset's features bundle (what the server would send) is cached."""
    import hashlib

    form = [options.get("preprocessing_values"), options.get("normalize")]  # what the bundle depends on
    digest = hashlib.sha256(json.dumps([dataset, form], sort_keys=True).encode())
    for module in ("features_bundle.py", os.path.join("trainer", "bundle.py")):  # a changed format: a new file
        with open(os.path.join(REPO, "abrunnerd", module), "rb") as f:
            digest.update(f.read())
    key = digest.hexdigest()[:12]
    return os.path.join("/tmp", "abrunnerd-bench-%s-%s.bundle" % (dataset, key))


def child_bundle(dataset: str, options: Dict[str, Any]) -> Dict[str, Any]:
    """The server's side: encode the job's features bundle (version 2 when the job allows it)."""
    from abrunnerd.trainer.bundle import encode_for_job

    path = bundle_path(dataset, options)
    if not os.path.exists(path):
        ds = load(dataset)
        data = encode_for_job(((m, ds.documents[m], None) for m in sorted(ds.groundtruth)), options)
        with open(path + ".part", "wb") as f:
            f.write(data)
        os.replace(path + ".part", path)
        with open(path + ".json", "w") as f:
            json.dump(ds.groundtruth, f)
    return {"path": path, "bytes": os.path.getsize(path)}


def child_memory(dataset: str, workers: int, options: Dict[str, Any], budget_mb: float,
                 stop_after: int = 0, time_limit: float = 0.0) -> Dict[str, Any]:
    """The training process's side: decode the bundle and train within the kernel budget (0: the default).

    ``stop_after`` fits or ``time_limit`` seconds of training (0: none) stop the run between cells; the
    partial run is reported as such (fits done, their CPU-s), never as a finished grid.  A line per
    finished cell goes to stderr (cells, wall, CPU-s of this process) so a run killed from outside
    still shows how far it came."""
    from abrunnerd.train_worker import single_threaded_blas

    single_threaded_blas()  # as the training process does, before numpy is imported
    from abrunnerd.trainer import TrainOptions, TrainingStopped, estimate_peak_memory, train
    from abrunnerd.trainer.bundle import dataset_from_bundle
    from abrunnerd.trainer.memory import kernel_budget

    path = bundle_path(dataset, options)
    with open(path + ".json") as f:
        groundtruth = json.load(f)
    with open(path, "rb") as f:
        ds = dataset_from_bundle(f.read(), dataset, groundtruth)
    opts = TrainOptions.from_job_options(options, seed=42)
    budget = int(budget_mb * 1024 ** 2) if budget_mb else kernel_budget()
    t0 = time.monotonic()
    est = estimate_peak_memory(len(ds.groundtruth), opts, workers=workers, memory_budget=budget) / 1024.0 ** 2
    seen = {"cells": 0, "first_cell_cpu": None, "first_cell_wall": None}

    def progress(p: Any) -> None:
        if p.stage == "training" and p.cells_done > seen["cells"]:
            seen["cells"] = p.cells_done
            if seen["first_cell_cpu"] is None:  # every set prepared, the first unit's kernels computed
                seen["first_cell_cpu"], seen["first_cell_wall"] = time.process_time(), time.monotonic() - t0
            print("cells %d/%d wall %.0f s cpu %.1f s (this process) %s" % (
                p.cells_done, p.cells_total, time.monotonic() - t0, time.process_time(), p.message),
                file=sys.stderr, flush=True)

    def should_stop() -> bool:
        return bool((stop_after and seen["cells"] >= stop_after)
                    or (time_limit and time.monotonic() - t0 >= time_limit))

    out = {"estimate_mb": est, "n": len(ds.groundtruth), "budget_mb": budget / 1024.0 ** 2,
           "fits_total": len(opts.configurations()) * opts.nfold}
    try:
        res = train(ds, opts, workers=workers, memory_budget=budget, release_documents=True, progress=progress,
                    should_stop=should_stop)
    except TrainingStopped:
        out.update({"train_wall_s": time.monotonic() - t0, "fits_done": seen["cells"], "finished": False,
                    "best": "stopped after %d fits" % seen["cells"], "table": {},
                    "first_fit_wall_s": seen["first_cell_wall"], "first_fit_cpu_s": seen["first_cell_cpu"]})
        return out
    best = res.best
    out.update({"train_wall_s": time.monotonic() - t0, "fits_done": out["fits_total"], "finished": True,
                "best": [best.preprocessing, best.kernel, best.c, best.gamma], "table": _table(res),
                "first_fit_wall_s": seen["first_cell_wall"], "first_fit_cpu_s": seen["first_cell_cpu"]})
    return out


def child_fit_study(dataset: str, options: Dict[str, Any], cells: List[List[Any]],
                    caches: List[float]) -> Dict[str, Any]:
    """Why one fit is slow at this size: each cell of (basic, fold 0) fitted with every libsvm cache size
    (the precomputed path's kernel), timed (CPU-s), with libsvm's iteration and support-vector counts;
    the cache only memoises kernel rows, so every cache size must give identical predictions."""
    import numpy as np
    from sklearn.svm import SVC

    from abrunnerd.trainer import TrainOptions
    from abrunnerd.trainer.bundle import dataset_from_bundle
    from abrunnerd.trainer.cells import SVM_TOL, fold_features
    from abrunnerd.trainer.kernels import KernelParts
    from abrunnerd.trainer.train import prepare

    path = bundle_path(dataset, options)
    with open(path + ".json") as f:
        groundtruth = json.load(f)
    with open(path, "rb") as f:
        ds = dataset_from_bundle(f.read(), dataset, groundtruth)
    opts = TrainOptions.from_job_options(options, seed=42)
    prepared = prepare(ds, opts, only=["basic"])
    unit = prepared.unit("basic", 0)
    t0 = time.process_time()
    parts = KernelParts(*fold_features(unit))
    out = {"n_train": int(len(unit.train)), "n_test": int(len(unit.test)), "classes": int(unit.n_classes),
           "kernel_parts_cpu_s": time.process_time() - t0, "fits": []}
    y_train, y_test = unit.y[unit.train], unit.y[unit.test]
    for kind, c, g in cells:
        k_train, k_test = parts.kernel(kind, 2.0 ** g)
        reference = None
        for cache in caches:
            t0 = time.process_time()
            svc = SVC(C=2.0 ** c, kernel="precomputed", tol=SVM_TOL, shrinking=True, cache_size=cache)
            svc.fit(k_train, y_train)
            fit_s = time.process_time() - t0
            predicted = svc.predict(k_test)
            if reference is None:
                reference = (predicted, svc.dual_coef_.copy())
            out["fits"].append({"cell": [kind, c, g], "cache_mb": cache, "fit_cpu_s": fit_s,
                                "iterations": [int(i) for i in np.ravel(getattr(svc, "n_iter_", []))],
                                "support_vectors": int(svc.support_.size),
                                "correct": int(np.sum(predicted == y_test)),
                                "identical": bool(np.array_equal(predicted, reference[0])
                                                  and np.array_equal(svc.dual_coef_, reference[1]))})
            print(json.dumps(out["fits"][-1]), file=sys.stderr, flush=True)
    return out


def _libsvm_arithmetic_kernels(x_train: Any, x_test: Any, kind: str, gamma: float) -> Any:
    """Train/test kernels with the arithmetic scikit-learn's libsvm uses when it computes them itself:
    one BLAS ddot per pair (numpy's stacked (1 x d) @ (d x 1) products call that same ddot), the C
    library's exp, dot(x - y, x - y) for test rows (tests/trainer/test_trainer_kernel_paths.py)."""
    import math

    import numpy as np

    x_train, x_test = np.ascontiguousarray(x_train), np.ascontiguousarray(x_test)  # as scikit-learn hands them
    n, d = x_train.shape  # to libsvm; a strided row would make numpy sum it itself instead of calling ddot
    cols = x_train[:, :, None]

    def dots(row: Any, against: Any) -> Any:
        return np.matmul(np.broadcast_to(row[None, None, :], (len(against), 1, d)), against).ravel()

    def c_exp(values: Any) -> Any:
        return np.fromiter(map(math.exp, values.ravel().tolist()), float, values.size).reshape(values.shape)

    sq = np.array([dots(r, r[None, :, None])[0] for r in x_train])
    gram = np.array([dots(r, cols) for r in x_train])
    if kind == "RBF":
        k_train = c_exp(-gamma * (sq[:, None] + sq[None, :] - 2 * gram))
        dist = []
        for t in x_test:
            diff = t - x_train
            dist.append(np.matmul(diff[:, None, :], diff[:, :, None]).ravel())  # ddot(x - y, x - y)
        return k_train, c_exp(-gamma * np.array(dist))
    b_train = gamma * gram + 0.0
    b_test = gamma * np.array([dots(t, cols) for t in x_test]) + 0.0
    return b_train * (b_train * b_train), b_test * (b_test * b_test)


def child_kernel_paths(dataset: str, options: Dict[str, Any], cell: List[Any]) -> Dict[str, Any]:
    """One configuration on every fold three ways: the precomputed path (ours), libsvm computing its own
    kernel (the memory-budget fallback), and a precomputed kernel with libsvm's own arithmetic."""
    import numpy as np
    from sklearn.svm import SVC

    from abrunnerd.trainer import TrainOptions
    from abrunnerd.trainer.bundle import dataset_from_bundle
    from abrunnerd.trainer.cells import SVM_TOL, fold_features
    from abrunnerd.trainer.kernels import KernelParts
    from abrunnerd.trainer.train import prepare

    prep, kind, c, g = cell
    path = bundle_path(dataset, options)
    with open(path + ".json") as f:
        groundtruth = json.load(f)
    with open(path, "rb") as f:
        ds = dataset_from_bundle(f.read(), dataset, groundtruth)
    opts = TrainOptions.from_job_options(options, seed=42)
    prepared = prepare(ds, opts, only=[prep])
    folds = []
    for fold in range(opts.nfold):
        unit = prepared.unit(prep, fold)
        x_train, x_test = fold_features(unit)
        y_train, y_test = unit.y[unit.train], unit.y[unit.test]
        ours_k = [k.copy() for k in KernelParts(x_train, x_test).kernel(kind, 2.0 ** g)]
        emulated = _libsvm_arithmetic_kernels(x_train, x_test, kind, 2.0 ** g)
        pre = dict(C=2.0 ** c, kernel="precomputed", tol=SVM_TOL, shrinking=True, cache_size=100)
        ours = SVC(**pre).fit(ours_k[0], y_train).predict(ours_k[1])
        emul = SVC(**pre).fit(emulated[0], y_train).predict(emulated[1])
        own = SVC(C=2.0 ** c, kernel="rbf" if kind == "RBF" else "poly", gamma=2.0 ** g, degree=3, coef0=0.0,
                  tol=SVM_TOL, shrinking=True, cache_size=100).fit(x_train, y_train).predict(x_test)
        k32 = int(np.count_nonzero(ours_k[0].astype(np.float32) != emulated[0].astype(np.float32)))
        folds.append({"fold": fold, "ours": int(np.sum(ours == y_test)), "fallback": int(np.sum(own == y_test)),
                      "emulated": int(np.sum(emul == y_test)),
                      "emulated_equals_fallback": bool(np.array_equal(emul, own)),
                      "ours_equals_fallback": bool(np.array_equal(ours, own)),
                      "train_kernel_values_differing_as_float32": k32, "train_kernel_values": int(ours_k[0].size)})
        print(json.dumps(folds[-1]), file=sys.stderr, flush=True)
    return {"folds": folds}


def child_profile(dataset: str, options: Dict[str, Any]) -> Dict[str, Any]:
    """One small job in this process under cProfile, with phase timings (CPU-s of this process)."""
    import cProfile
    import io
    import pstats

    marks = [("interpreter start + this script", time.process_time())]
    import numpy  # noqa: F401
    marks.append(("import numpy", time.process_time()))
    from abrunnerd.trainer import TrainOptions, train
    marks.append(("import abrunnerd.trainer", time.process_time()))
    ds = load(dataset)
    marks.append(("read + parse JSON documents", time.process_time()))
    profiler = cProfile.Profile(time.process_time)  # CPU time: the machine is shared
    profiler.enable()
    train(ds, TrainOptions.from_job_options(options, seed=42), workers=1)
    profiler.disable()
    marks.append(("train() (profiled: the profiler inflates it)", time.process_time()))
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
    phases, last = [], 0.0
    for label, t in marks:
        phases.append([label, t - last])
        last = t
    return {"phases": phases, "profile": text.getvalue()}


# --- reports --------------------------------------------------------------------------------------

def _load_average() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def _agree(ours: Dict[str, Any], naive: Dict[str, Any]) -> int:
    same = 0
    for key, correct in naive["table"].items():
        combo, fold = key.rsplit("|", 1)
        same += ours["table"][combo][int(fold)] == correct
    return same


def report_ab_real_1(workers: int, quick: bool) -> int:
    with open(os.path.join(AB_REAL_1, "gaia-reference", "timing.json")) as f:
        gaia = json.load(f)
    print("== ab-real-1 (180 recordings), at most %d worker(s) for ours; %s at start" % (workers, _load_average()))
    common = ["--dataset", "ab-real-1", "--workers", str(workers)]
    runs = [("ours: AB grid (3,600 fits)", run_child(["--child", "ours", "--options", "{}"] + common)),
            ("ours: one configuration (5 fits)", run_child(["--child", "ours", "--options", json.dumps(ONE_CONFIG)]
                                                           + common)),
            ("ours: basic only (720 fits)", run_child(["--child", "ours", "--options", json.dumps(ONE_PREPROCESSING)]
                                                      + common)),
            ("naive: basic only (720 fits)", run_child(["--child", "naive", "--options",
                                                        json.dumps(ONE_PREPROCESSING)] + common))]
    if not quick:
        runs.append(("naive: AB grid (3,600 fits)", run_child(["--child", "naive", "--options", "{}"] + common)))
    print("%-36s %9s %9s %14s" % ("(whole process, workers included)", "CPU-s", "wall s", "peak RSS MB"))
    for label, r in runs:
        print("%-36s %9.2f %9.2f %14.0f" % (label, r["cpu_s"], r["wall_s"], r["peak_tree_mb"]))
    print("%-36s %9.2f %9.2f %14.0f" % ("Gaia 2.4.6: AB grid (timing.json)", gaia["cpu_s"], gaia["wall_s"],
                                        gaia["max_rss_kb"] / 1024.0))
    by = dict(runs)
    ab, one = by["ours: AB grid (3,600 fits)"], by["ours: one configuration (5 fits)"]
    ours720, naive720 = by["ours: basic only (720 fits)"], by["naive: basic only (720 fits)"]
    ratio = naive720["cpu_s"] / ours720["cpu_s"]
    print("goal AB grid <= %.1f CPU-s: %.2f %s; vs Gaia %.0fx fewer CPU-s" % (
        GOALS["ab_grid_cpu"], ab["cpu_s"], "met" if ab["cpu_s"] <= GOALS["ab_grid_cpu"] else "NOT met",
        gaia["cpu_s"] / ab["cpu_s"]))
    print("goal one configuration <= %.1f CPU-s: %.2f %s" % (
        GOALS["one_config_cpu"], one["cpu_s"], "met" if one["cpu_s"] <= GOALS["one_config_cpu"] else "NOT met"))
    print("goal >= %.0fx the naive baseline on 720 fits, fixed costs included: %.1fx %s (wall %.1fx)" % (
        GOALS["one_prep_ratio"], ratio, "met" if ratio >= GOALS["one_prep_ratio"] else "NOT met",
        naive720["wall_s"] / ours720["wall_s"]))
    print("fits with identical correct counts, ours vs naive: %d/%d (720-fit grid), best %s vs %s" % (
        _agree(ours720, naive720), naive720["fits"], ours720["best"], naive720["best"]))
    report_floor(ours720, naive720)
    if not quick:
        naive = by["naive: AB grid (3,600 fits)"]
        print("AB grid: %.1fx the naive baseline's CPU-s; fits identical %d/%d; best ours %s, naive %s, Gaia's %s"
              % (naive["cpu_s"] / ab["cpu_s"], _agree(ab, naive), naive["fits"], ab["best"], naive["best"],
                 ["gaussianized", "RBF", 11, -11]))
    print(_load_average() + " at end")
    return 0


FLOOR_PHASES = ("interpreter start + benchmark script", "import numpy, scikit-learn, abrunnerd.trainer",
                "read + parse the JSON documents", "merge + preprocessing")


def report_floor(ours: Dict[str, Any], naive: Dict[str, Any]) -> None:
    """Where each side's CPU-s go, and the ratio the shared fixed costs leave reachable."""
    a, b = dict(ours["phases"]), dict(naive["phases"])
    labels = [label for label, _ in ours["phases"]]
    labels += [label for label, _ in naive["phases"] if label not in labels]
    print("floor analysis, 720-fit grid (CPU-s of the measured process; the same code for both up to the fits):")
    print("  %-48s %7s %7s" % ("phase", "ours", "naive"))
    for label in labels:
        print("  %-48s %7s %7s" % (label, "%.2f" % a[label] if label in a else "-",
                                   "%.2f" % b[label] if label in b else "-"))
    rest_a, rest_b = ours["cpu_s"] - sum(a.values()), naive["cpu_s"] - sum(b.values())
    print("  %-48s %7.2f %7.2f" % ("rest (exit; worker processes if any)", rest_a, rest_b))
    print("  %-48s %7.2f %7.2f" % ("total (whole process tree)", ours["cpu_s"], naive["cpu_s"]))
    floor = sum(a.get(label, 0.0) for label in FLOOR_PHASES)
    naive_fits = naive["cpu_s"] - sum(b.get(label, 0.0) for label in FLOOR_PHASES)
    print("shared floor (start, imports, parsing, merge + preprocessing): %.2f CPU-s of ours' %.2f; the naive "
          "fits cost %.2f CPU-s above it" % (floor, ours["cpu_s"], naive_fits))
    print("ratio reachable with the floor as measured: even if ours' fits, final model and exit cost nothing, "
          "%.2f / %.2f = %.1fx (now %.1fx); 20x would need the naive fits to cost >= %.1f CPU-s, or a floor "
          "<= %.2f CPU-s" % (naive["cpu_s"], floor, naive["cpu_s"] / floor, naive["cpu_s"] / ours["cpu_s"],
                             19 * floor, naive_fits / 19.0))


def report_synthetic(dataset: str, workers: int, sample: int) -> None:
    print("== %s: AB's grid, at most %d worker(s) for ours; %s" % (dataset, workers, _load_average()))
    ours = run_child(["--child", "ours", "--options", "{}", "--dataset", dataset, "--workers", str(workers)])
    naive = run_child(["--child", "naive", "--options", "{}", "--dataset", dataset, "--sample", str(sample)])
    total = 3600
    naive_wall = naive["train_wall_s"] * total / float(naive["fits"])
    print("ours: %.1f s training wall, %.1f CPU-s whole process, peak %.0f MB" % (
        ours["train_wall_s"], ours["cpu_s"], ours["peak_tree_mb"]))
    print("naive: %d random fits (seed 7) in %.1f s -> %.1f s for the grid (extrapolated)" % (
        naive["fits"], naive["train_wall_s"], naive_wall))
    print("speed-up (training wall): %.1fx; sampled fits identical: %d/%d; best (ours) %s" % (
        naive_wall / ours["train_wall_s"], _agree(ours, naive), naive["fits"], ours["best"]))


def report_memory(n: int, workers: int, budget_mb: float, grid: str, compare_mb: float, stop_after: int,
                  time_limit: float) -> None:
    options = {"ab": {}, "one": ONE_CONFIG, "basic": ONE_PREPROCESSING, "small": SMALL_GRID}[grid]
    dataset = "synthetic-%d" % n
    made = run_child(["--child", "bundle", "--dataset", dataset, "--options", json.dumps(options)])
    print("== %s (bundle %.1f MB, made by the server's encoder), grid %s, at most %d worker(s); %s" % (
        dataset, made["bytes"] / 1024.0 ** 2, grid, workers, _load_average()), flush=True)
    budgets = [budget_mb] + ([compare_mb] if compare_mb else [])
    runs = []
    for budget in budgets:
        m = run_child(["--child", "memory", "--dataset", dataset, "--workers", str(workers),
                       "--options", json.dumps(options), "--budget-mb", str(budget), "--stop-after", str(stop_after),
                       "--time-limit", str(time_limit)])
        runs.append(m)
        print("kernel budget %.0f MB: peak RSS of all processes %.0f MB (goal <= 4096), wall %.1f s, %.1f CPU-s; "
              "estimate_peak_memory %.0f MB (%+.0f %% of the peak); best %s" % (
                  m["budget_mb"], m["peak_tree_mb"], m["wall_s"], m["cpu_s"], m["estimate_mb"],
                  100.0 * (m["estimate_mb"] / m["peak_tree_mb"] - 1), m["best"]), flush=True)
        if not m["finished"]:
            fits, first_cpu = m["fits_done"], m["first_fit_cpu_s"]
            print("  PARTIAL run: %d of %d fits done; up to the first fit (decode, merge, 5 sets, first kernels) "
                  "%.0f s wall, %.1f CPU-s" % (fits, m["fits_total"], m["first_fit_wall_s"] or 0.0,
                                                first_cpu or 0.0))
            if fits >= 2 and first_cpu is not None:
                per_fit = (m["cpu_s"] - first_cpu) / float(fits - 1)
                print("  after the first fit: %.1f CPU-s a fit -> whole grid ~%.1f CPU-h if every fit cost that "
                      "(the fits done are the first units' only, in (kernel, gamma, C) order: not a random sample)"
                      % (per_fit, (first_cpu + per_fit * m["fits_total"]) / 3600.0))
    if len(runs) == 2 and runs[0]["finished"] and runs[1]["finished"]:
        a, b = runs
        differ = sorted(k for k in a["table"] if a["table"][k] != b["table"][k])
        print("per-configuration fold counts identical: %d/%d; best %s" % (
            len(a["table"]) - len(differ), len(a["table"]), "identical" if a["best"] == b["best"] else "DIFFERENT"))
        for k in differ:
            print("  differs: %s  fold correct %s (budget %.0f MB) vs %s (budget %.0f MB)" % (
                k, a["table"][k], a["budget_mb"], b["table"][k], b["budget_mb"]))
    print(_load_average() + " at end")


def report_kernel_paths(n: int, grid: str, cell: List[Any]) -> None:
    options = {"ab": {}, "one": ONE_CONFIG, "basic": ONE_PREPROCESSING, "small": SMALL_GRID}[grid]
    dataset = "synthetic-%d" % n
    run_child(["--child", "bundle", "--dataset", dataset, "--options", json.dumps(options)])
    print("== %s, %s C=2^%d gamma=2^%d of %s: fold correct counts three ways; %s" % (
        dataset, cell[1], cell[2], cell[3], cell[0], _load_average()))
    r = run_child(["--child", "kernelpaths", "--dataset", dataset, "--options", json.dumps(options),
                   "--cell", json.dumps(cell)])
    print("%5s %8s %9s %24s %16s %22s" % ("fold", "ours", "fallback", "libsvm arithmetic, precomp.",
                                            "= fallback?", "train kernel f32 diffs"))
    for f in r["folds"]:
        print("%5d %8d %9d %24d %16s %15d/%d" % (
            f["fold"], f["ours"], f["fallback"], f["emulated"],
            "identical" if f["emulated_equals_fallback"] else "DIFFERENT",
            f["train_kernel_values_differing_as_float32"], f["train_kernel_values"]))


STUDY_CELLS = [["RBF", -5, -11], ["RBF", 3, -11], ["RBF", 11, -11], ["RBF", 11, -5], ["poly", 11, -11]]


def report_fit_study(n: int, caches: List[float]) -> None:
    dataset = "synthetic-%d" % n
    made = run_child(["--child", "bundle", "--dataset", dataset, "--options", "{}"])
    print("== %s (bundle %.1f MB): single fits of (basic, fold 0) on the precomputed kernel; %s" % (
        dataset, made["bytes"] / 1024.0 ** 2, _load_average()))
    r = run_child(["--child", "fitstudy", "--dataset", dataset, "--options", "{}",
                   "--study-cells", json.dumps(STUDY_CELLS), "--study-caches", json.dumps(caches)])
    print("n_train %d, n_test %d, %d classes; Gram matrices %.1f CPU-s; peak RSS %.0f MB" % (
        r["n_train"], r["n_test"], r["classes"], r["kernel_parts_cpu_s"], r["peak_tree_mb"]))
    print("%-18s %9s %9s %12s %6s %8s %10s" % ("cell", "cache MB", "fit CPU-s", "iterations", "SVs", "correct",
                                               "identical"))
    for f in r["fits"]:
        print("%-18s %9.0f %9.2f %12s %6d %8d %10s" % (
            "%s C=2^%d g=2^%d" % tuple(f["cell"]), f["cache_mb"], f["fit_cpu_s"], sum(f["iterations"]),
            f["support_vectors"], f["correct"], "yes" if f["identical"] else "NO"))
    print(_load_average() + " at end")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="at most this many worker processes for ours")
    parser.add_argument("--quick", action="store_true", help="skip the naive baseline on AB's whole grid")
    parser.add_argument("--profile", action="store_true", help="profile a one-configuration job in one process")
    parser.add_argument("--datasets", default="ab-real-1", help="ab-real-1 and/or synthetic-N, comma-separated")
    parser.add_argument("--naive-sample", type=int, default=60, help="fits timed for a synthetic naive baseline")
    parser.add_argument("--memory", type=int, metavar="N", help="peak RSS, wall and CPU-s on synthetic-N")
    parser.add_argument("--grid", choices=["one", "small", "basic", "ab"], default="one",
                        help="with --memory: one configuration, 90 fits on basic, the 720-fit basic grid, or AB's")
    parser.add_argument("--budget-mb", type=float, default=0.0,
                        help="with --memory: kernel memory budget (default: half of the available RAM)")
    parser.add_argument("--compare-mb", type=float, default=0.0,
                        help="with --memory: train again with this budget and compare every fold count")
    parser.add_argument("--stop-after", type=int, default=0,
                        help="with --memory: stop after this many fits (peak of a grid too long to finish)")
    parser.add_argument("--time-limit", type=float, default=0.0,
                        help="with --memory: stop after this many seconds of training (reported as a partial run)")
    parser.add_argument("--kernel-paths", type=int, metavar="N",
                        help="one configuration (--cell) of synthetic-N three ways: precomputed, libsvm's own "
                             "kernel (the memory-budget fallback), precomputed with libsvm's arithmetic")
    parser.add_argument("--cell", default='["basic", "RBF", 7, -5]', help="with --kernel-paths: JSON "
                        "[preprocessing, kernel, C exponent, gamma exponent]")
    parser.add_argument("--fit-study", type=int, metavar="N",
                        help="why fits are slow on synthetic-N: single fits timed per libsvm cache size")
    parser.add_argument("--study-caches", default="[100, 1000]", help="with --fit-study: JSON list of cache MB")
    parser.add_argument("--study-cells", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["ours", "naive", "memory", "profile", "bundle", "fitstudy", "kernelpaths"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--sample", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        options = json.loads(args.options)
        if args.child == "ours":
            out = child_ours(args.dataset, args.workers, options)
        elif args.child == "naive":
            out = child_naive(args.dataset, options, args.sample)
        elif args.child == "memory":
            out = child_memory(args.dataset, args.workers, options, args.budget_mb, args.stop_after,
                               args.time_limit)
        elif args.child == "bundle":
            out = child_bundle(args.dataset, options)
        elif args.child == "kernelpaths":
            out = child_kernel_paths(args.dataset, options, json.loads(args.cell))
        elif args.child == "fitstudy":
            out = child_fit_study(args.dataset, options, json.loads(args.study_cells), json.loads(args.study_caches))
        else:
            out = child_profile(args.dataset, options)
        print(json.dumps(out))
        if args.child in ("ours", "memory"):  # ours is the training process: it leaves as train_worker does
            from abrunnerd.train_worker import exit_now

            exit_now(0)
        return 0
    if not os.path.isdir(AB_REAL_1):
        print("needs ../shared/data/ab-real-1 beside the repository", file=sys.stderr)
        return 1
    if args.profile:
        r = run_child(["--child", "profile", "--dataset", "ab-real-1", "--options", json.dumps(ONE_CONFIG)])
        print("one configuration on ab-real-1 in one process: %.2f CPU-s, %.2f s wall; %s" % (
            r["cpu_s"], r["wall_s"], _load_average()))
        for label, seconds in r["phases"]:
            print("  %-45s %6.2f CPU-s" % (label, seconds))
        print(r["profile"])
        return 0
    if args.kernel_paths:
        report_kernel_paths(args.kernel_paths, args.grid, json.loads(args.cell))
        return 0
    if args.fit_study:
        report_fit_study(args.fit_study, json.loads(args.study_caches))
        return 0
    if args.memory:
        report_memory(args.memory, args.workers, args.budget_mb, args.grid, args.compare_mb, args.stop_after,
                      args.time_limit)
        return 0
    for name in args.datasets.split(","):
        if name == "ab-real-1":
            report_ab_real_1(args.workers, args.quick)
        else:
            report_synthetic(name, args.workers, args.naive_sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
