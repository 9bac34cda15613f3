"""The training run: validate, merge, preprocess, cross-validate the grid, pick the best, fit the final model.

Ties on accuracy go to the configuration whose grid neighbours score best on average,
then to the first in the job's grid order (see ``choose_best`` and docs/trainer.md).
"""
import hashlib
import os
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from abrunnerd.trainer.cells import UnitInput
from abrunnerd.trainer.checkpoint import Checkpoint
from abrunnerd.trainer.errors import DatasetError, FoldError, TrainingStopped
from abrunnerd.trainer.folds import artist_folds, balance_classes, gaia_folds
from abrunnerd.trainer.dataset import Dataset
from abrunnerd.trainer.frame import Frame
from abrunnerd.trainer.grid import WorkerPool, run_tasks, useful_workers
from abrunnerd.trainer.memory import UnitPlan, kernel_budget, plan_units
from abrunnerd.trainer.merge import Merged, merge_documents
from abrunnerd.trainer.model import class_order, fit_final, slugify
from abrunnerd.trainer.options import TrainOptions
from abrunnerd.trainer.preprocessing import apply_preprocessing
from abrunnerd.trainer.progress import EtaClock, Progress
from abrunnerd.trainer.result import Combination, TrainResult
from abrunnerd.trainer.templates import choose_template

TRAINER_VERSION = "1"
ProgressFn = Optional[Callable[[Progress], None]]


class Prepared(NamedTuple):
    groundtruth: Dict[str, str]
    held_out: Dict[str, str]
    ids: List[str]
    y: np.ndarray
    classes: List[str]
    merged: Merged
    template: str
    sets: Dict[str, "PreparedSet"]
    folds: Dict[str, int]

    def unit(self, prep: str, fold: int, plan: Optional[UnitPlan] = None) -> UnitInput:
        """The worker input of one (preprocessing, fold); the feature matrix is shared by the folds."""
        prepared_set = self.sets[prep]
        fold_of = np.array([self.folds[m] for m in self.ids])
        train = np.flatnonzero(fold_of != fold)
        test = np.flatnonzero(fold_of == fold)
        unit = UnitInput(prep, fold, prepared_set.features, prepared_set.blocks, self.y, train, test,
                         len(self.classes), prepared_set.error)
        if plan is not None and plan.mode != "precomputed":
            unit = unit._replace(kernel_mode=plan.mode, cache_mb=plan.cache_mb)
        return unit


class PreparedSet(NamedTuple):
    """One preprocessing set fitted on all training data (or why it could not be)."""

    steps: list  # merge steps + the set's steps
    frame: Optional[Frame]
    features: np.ndarray  # float32 (n, d) in svmtrain's feature order
    blocks: list
    error: Optional[str] = None


def check_groundtruth(groundtruth: Dict[str, str], documents: Dict[str, Any]) -> None:
    if not groundtruth:
        raise DatasetError("the dataset has no recordings")
    by_class: Dict[str, List[str]] = {}
    for mbid, cls in groundtruth.items():
        by_class.setdefault(cls, []).append(mbid)
        if mbid not in documents:
            raise DatasetError("recording %s (class %r) has no low-level document" % (mbid, cls))
        if not isinstance(documents[mbid], dict):
            raise DatasetError("recording %s: the low-level document is not a JSON object" % mbid)
    if len(by_class) < 2:
        raise DatasetError("the dataset needs at least 2 classes, it has %d (%s)"
                           % (len(by_class), ", ".join(sorted(by_class))))
    for cls in sorted(by_class):
        if len(by_class[cls]) < 2:
            raise DatasetError("class %r has only 1 recording (%s); every class needs at least 2"
                               % (cls, by_class[cls][0]))


def prepare(ds: Dataset, opts: TrainOptions, only: Optional[Sequence[str]] = None,
            release_documents: bool = False) -> Prepared:
    groundtruth, held_out = dict(ds.groundtruth), {}
    if ds.merged is not None:  # a version-2 bundle: merged by the server, for exactly these recordings
        check_groundtruth(ds.groundtruth, {m: {} for m in ds.merged.frame.ids})
        if opts.normalize or opts.excluded:
            raise DatasetError("this features bundle cannot train a job with normalize or excluded descriptors; "
                               "the server should have sent the complete form")
        merged = ds.merged
    else:
        check_groundtruth(ds.groundtruth, ds.documents)
        if opts.normalize:
            groundtruth, held_out = balance_classes(groundtruth, opts.seed)
        documents = {m: ds.documents[m] for m in groundtruth}
        if release_documents:
            ds.documents.clear()  # ours now: merge_documents drops each as it is flattened
        merged = merge_documents(documents, opts.excluded, opts.fail_on_unmatched, release=release_documents)
    template = opts.template or choose_template([d.name for d in merged.raw_layout.descriptors])
    sets = {}
    for name in opts.preprocessing_values:
        if only is not None and name not in only:
            continue
        try:
            steps, frame = apply_preprocessing(merged.frame, name, template, merged.dropped,
                                               opts.preprocessing_definition(name))
            strings = frame.names_of(2)
            if strings:
                raise FoldError("String descriptors left after preprocessing (not enumerated): "
                                + ", ".join(s[1:] for s in strings))
            sets[name] = PreparedSet(merged.steps + steps, frame, frame.feature_matrix(), frame.feature_blocks())
        except FoldError as e:
            empty = np.zeros((len(merged.frame.ids), 0), np.float32)
            sets[name] = PreparedSet([], None, empty, [], "preprocessing %s: %s" % (name, e))
    classes = class_order(groundtruth.values())
    index = {c: i for i, c in enumerate(classes)}
    ids = merged.frame.ids
    y = np.array([index[groundtruth[m]] for m in ids], dtype=np.int64)
    if opts.filter_type == "artist":
        folds = artist_folds(groundtruth, ds.artists or {}, opts.nfold, opts.seed)
    else:
        folds = gaia_folds(groundtruth, opts.nfold, opts.seed)
    return Prepared(groundtruth, held_out, ids, y, classes, merged, template, sets, folds)


def fingerprint(prepared: Prepared, opts: TrainOptions) -> str:
    """Identifies dataset content, folds and options: a checkpoint is only reused for the same run."""
    h = hashlib.sha256()
    h.update(("abrunnerd-trainer %s\n%r\n" % (TRAINER_VERSION, sorted(opts.to_json().items()))).encode())
    for mbid in prepared.ids:
        h.update(("%s\t%s\t%d\n" % (mbid, prepared.groundtruth[mbid], prepared.folds[mbid])).encode())
    frame = prepared.merged.frame
    for name in frame.names():
        v = frame.values[name]
        h.update(name.encode("utf-8"))
        h.update(v.tobytes() if v.dtype != object else "\x00".join(v.ravel().tolist()).encode("utf-8"))
    return h.hexdigest()


def _report(progress: ProgressFn, stage: str, done: int, total: int, eta: Optional[float], message: str) -> None:
    if progress is not None:
        progress(Progress(stage, done, total, eta, message))


def _combine(opts: TrainOptions, done: Dict[tuple, Any], n_classes: int) -> List[Combination]:
    out = []
    for prep, kernel, c, g, b in opts.configurations():
        combo = Combination(prep, kernel, c, g, "ok", confusion=np.zeros((n_classes, n_classes), int).tolist(),
                            balance_classes=b)
        cm = np.zeros((n_classes, n_classes), dtype=np.int64)
        for fold in range(opts.nfold):
            outcome = done[(prep, kernel, c, g, b, fold)]
            if not outcome.ok:
                combo.status = "failed"
                combo.error = combo.error or "fold %d: %s" % (fold, outcome.error)
                combo.fold_correct.append(None)
                combo.fold_total.append(None)
                combo.fold_confusion.append(None)
                continue
            combo.fold_correct.append(outcome.correct)
            combo.fold_total.append(outcome.total)
            combo.fold_confusion.append(outcome.confusion or None)
            combo.correct += outcome.correct
            combo.total += outcome.total
            if outcome.confusion:
                cm += np.asarray(outcome.confusion, dtype=np.int64)
        combo.confusion = cm.tolist()
        if combo.status == "failed":
            combo.correct = combo.total = 0
        out.append(combo)
    return out


def neighbourhood_mean(combo: Combination, table: Dict[tuple, Combination], opts: TrainOptions) -> float:
    """Mean accuracy of the trained grid neighbours (C and gamma one step away, same preprocessing, kernel
    and balanceClasses)."""
    cs, gs = sorted(opts.c_values), sorted(opts.gamma_values)
    ci, gi = cs.index(combo.c), gs.index(combo.gamma)
    accs = []
    for a in range(max(0, ci - 1), min(len(cs), ci + 2)):
        for b in range(max(0, gi - 1), min(len(gs), gi + 2)):
            other = table.get((combo.preprocessing, combo.kernel, cs[a], gs[b], combo.balance_classes))
            if (a, b) != (ci, gi) and other is not None and other.accuracy is not None:
                accs.append(other.accuracy)
    return sum(accs) / len(accs) if accs else 0.0


def choose_best(combos: List[Combination], opts: TrainOptions) -> Combination:
    """Highest pooled accuracy; ties: the best neighbourhood mean, then the job's grid order.

    A configuration surrounded by good neighbours is less likely to owe its score to a
    lucky split; on ab-real-1 this picks the configuration Gaia picked among three ties.
    """
    ok = [c for c in combos if c.status == "ok" and c.total]
    if not ok:
        reasons = sorted(set(c.error for c in combos if c.error))
        raise DatasetError("no configuration could be trained: " + "; ".join(reasons[:3]))
    top = max(c.correct * 1.0 / c.total for c in ok)
    tied = [c for c in ok if c.correct * 1.0 / c.total == top]
    table = {(c.preprocessing, c.kernel, c.c, c.gamma, c.balance_classes): c for c in combos}
    order = {id(c): i for i, c in enumerate(combos)}
    return max(tied, key=lambda c: (neighbourhood_mean(c, table, opts), -order[id(c)]))


class _NoPool:
    """Stands in for a WorkerPool when training runs in this process."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def train(ds: Dataset, opts: TrainOptions, workers: Optional[int] = None, checkpoint_path: Optional[str] = None,
          progress: ProgressFn = None, should_stop: Optional[Callable[[], bool]] = None,
          pool: str = "auto", memory_budget: Optional[int] = None, release_documents: bool = False) -> TrainResult:
    """Run the whole search; see the package docstring for the contract.

    ``workers`` is the most processes to use (default: the CPUs; never more than CPUs or
    units: --jobs 64 on 10 cells spawned 64); with ``pool="auto"`` a cost estimate
    decides whether worker processes finish sooner than this process (small grids and
    datasets train in-process); ``pool="always"`` uses them regardless.
    ``memory_budget``: bytes for kernel matrices of all concurrent units (default
    ``memory.kernel_budget()``); it limits how many units run at once and, when one
    unit's kernels exceed it, lets libsvm compute kernel rows in its cache instead.
    ``release_documents``: empty ``ds.documents`` as they are merged (the caller no
    longer needs them; a large dataset then never holds documents and frame at once).
    """
    workers = max(1, min(workers or os.cpu_count() or 1, os.cpu_count() or 1))
    units = len(opts.preprocessing_values) * opts.nfold
    n_cells = len(opts.configurations()) * opts.nfold
    plan = plan_units(len(ds.groundtruth), opts.nfold, workers,
                      kernel_budget() if memory_budget is None else memory_budget)
    workers = min(workers, plan.concurrent)
    if pool == "always":
        workers = max(1, min(workers, units))
    else:
        workers = useful_workers(workers, len(ds.groundtruth), n_cells, units, opts.nfold)
    _report(progress, "preparing", 0, 0, None, "merging and preprocessing %d recordings" % len(ds.groundtruth))
    with (WorkerPool(workers) if workers > 1 else _NoPool()) as pool:
        prepared = prepare(ds, opts, release_documents=release_documents)
        keys = [(p, k, c, g, b, f) for (p, k, c, g, b) in opts.configurations() for f in range(opts.nfold)]
        log = Checkpoint(checkpoint_path, fingerprint(prepared, opts))
        try:
            done = {key: log.done[key] for key in keys if key in log.done}
            total = len(keys)
            clock = EtaClock()
            state = {"done": len(done)}
            _report(progress, "training", len(done), total, None,
                    "%d of %d cells already done" % (len(done), total))

            def on_cell(prep: str, fold: int, cell: tuple, outcome: Any) -> None:
                key = (prep, cell[0], cell[1], cell[2], cell[3] if len(cell) > 3 else None, fold)
                log.add(key, outcome)
                done[key] = outcome
                clock.tick()
                state["done"] += 1
                _report(progress, "training", state["done"], total, clock.eta(total - state["done"]),
                        "%s %s C=2^%d gamma=2^%d fold %d" % (prep, cell[0], cell[1], cell[2], fold))

            tasks = []
            for prep in opts.preprocessing_values:
                for fold in range(opts.nfold):
                    cells = [(k, c, g) if b is None else (k, c, g, b) for (p, k, c, g, b, f) in keys
                             if p == prep and f == fold and (p, k, c, g, b, f) not in done]
                    if cells:
                        tasks.append((prepared.unit(prep, fold, plan), cells))
            if should_stop is not None and should_stop():
                raise TrainingStopped("stopped before training")
            run_tasks(tasks, on_cell, pool, should_stop)
        finally:
            log.close()
    combos = _combine(opts, done, len(prepared.classes))
    best = choose_best(combos, opts)
    _report(progress, "final", total, total, 0.0, "training the final model (%s %s C=2^%d gamma=2^%d)"
            % (best.preprocessing, best.kernel, best.c, best.gamma))
    chosen = prepared.sets[best.preprocessing]
    try:
        model = fit_final(chosen.frame, chosen.steps, prepared.y, prepared.classes, slugify(ds.name) or "dataset",
                          best.kernel, best.c, best.gamma, opts.seed, best.balance_classes,
                          memory_budget=kernel_budget() if memory_budget is None else memory_budget)
    except FoldError as e:
        raise DatasetError("the final model cannot be trained: %s" % e) from None
    merged = prepared.merged
    info = {"n_recordings": len(prepared.ids), "descriptors_dropped": len(merged.dropped),
            "template": prepared.template}
    if opts.balance_classes or opts.preprocessing_sets is not None or opts.excluded:  # Gaia's forms say more
        info.update({"merge_removed_variable_length": [n[1:] for n in merged.variable_length],
                     "merge_removed_constant": [n[1:] for n in merged.constant],
                     "merge_removed_excluded": [n[1:] for n in merged.excluded],
                     "descriptors_not_in_every_document": [n[1:] for n in sorted(merged.dropped)]})
    result = TrainResult(best, combos, prepared.classes, model, opts.seed, opts.nfold, info, prepared.held_out)
    _report(progress, "done", total, total, 0.0, "best %s %s C=2^%d gamma=2^%d: %.2f %%"
            % (best.preprocessing, best.kernel, best.c, best.gamma, best.accuracy))
    return result


def evaluate_cells(ds: Dataset, opts: TrainOptions, cells: Sequence[Tuple[Dict[str, Any], int]]
                   ) -> List[Tuple[Optional[int], Optional[int]]]:
    """Recompute single (combination, fold) cells, e.g. a server's spot check; failed -> (None, None)."""
    from abrunnerd.trainer.cells import run_unit

    prepared = prepare(ds, opts, only=sorted(set(c["preprocessing"] for c, _ in cells)))
    out = []
    for combo, fold in cells:
        if combo["preprocessing"] not in prepared.sets:
            raise DatasetError("preprocessing %r is not in the job's grid" % combo["preprocessing"])
        if not 0 <= int(fold) < opts.nfold:
            raise DatasetError("fold %r is outside 0..%d" % (fold, opts.nfold - 1))
        unit = prepared.unit(combo["preprocessing"], int(fold))
        cell = (combo["kernel"], int(combo["C"]), int(combo["gamma"]))
        outcome = next(o for _, o in run_unit(unit, [cell]))
        out.append((outcome.correct, outcome.total) if outcome.ok else (None, None))
    return out
