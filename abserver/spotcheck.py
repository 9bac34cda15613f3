"""The spot check: recompute a few random (combination, fold) cells of an upload with our trainer.

A result whose claimed fold accuracies disagree with a recomputation beyond the
tolerance is refused (422 ``spot_check_failed``). The trainer (numpy, scikit-learn)
is imported only here and only when a check runs, so the server starts without it.
"""
import logging
import random
from typing import Any, Dict


from .config import ServerConfig
from .errors import ApiError, invalid
from .results import class_counts, ok_cells

log = logging.getLogger("abserver.spotcheck")


def trainer_available() -> bool:
    try:
        from abrunnerd.trainer import evaluate_cells  # noqa: F401
    except ImportError:
        return False
    return True


def spot_check(job: Any, snapshot: Dict[str, Any], options: Dict[str, Any], result: Dict[str, Any],
               config: ServerConfig) -> None:
    """Raise 422 when recomputed cells disagree; skip (logged) when off, too big or no trainer."""
    n = sum(class_counts(snapshot).values())
    if config.spot_check_cells <= 0 or n > config.spot_check_max_recordings:
        return
    if not trainer_available():
        log.warning("spot check skipped for job %s: abrunnerd.trainer.evaluate_cells is not available", job.id)
        return
    cells = [cell for cell in ok_cells(result) if cell[3] > 0]  # an empty fold (a class of <= nfold
    # recordings leaves some empty) has nothing to recompute
    if not cells and ok_cells(result):
        return
    if not cells:
        raise invalid("missing_combinations", "the spot check needs per-combination fold results "
                      "('combinations' with fold_correct/fold_total)")
    rng = random.SystemRandom()  # unpredictable, so a forger cannot know which cells are checked
    chosen = rng.sample(cells, min(config.spot_check_cells, len(cells)))
    recomputed = _evaluate(job, snapshot, options, [(params, fold) for params, fold, _c, _t in chosen])
    for (params, fold, correct, total), (r_correct, r_total) in zip(chosen, recomputed):
        if r_total is None:
            raise invalid("spot_check_failed", "combination %s fold %d: the result says it trained, but it "
                          "fails on the server's trainer" % (params, fold))
        if r_total != total:
            raise invalid("spot_check_failed", "combination %s fold %d: the result evaluates %d recordings, "
                          "the server's recomputation %d" % (params, fold, total, r_total))
        if r_total and abs(correct - r_correct) / float(r_total) > config.spot_check_tolerance:
            raise invalid("spot_check_failed", "combination %s fold %d: the result says %d of %d correct, the "
                          "server's recomputation %d (tolerance %.0f%%)"
                          % (params, fold, correct, total, r_correct, 100 * config.spot_check_tolerance))


def _evaluate(job, snapshot, options, cells):
    from abrunnerd.trainer import DatasetError, TrainOptions, evaluate_cells
    from abrunnerd.trainer.bundle import dataset_from_bundle

    from . import jobs as job_store
    from .context import engine

    with engine().connect() as conn:
        bundle = bytes(job_store.bundle_of(conn, job).bundle)
    groundtruth = {}
    for cls in snapshot["classes"]:
        for mbid in cls["recordings"]:
            groundtruth[mbid] = cls["name"]
    ds = dataset_from_bundle(bundle, snapshot["name"], groundtruth)  # either bundle version
    opts = TrainOptions.from_job_options(options, seed=job.seed)
    try:
        return evaluate_cells(ds, opts, cells=cells)
    except DatasetError as exc:
        raise ApiError(422, "spot_check_failed", "the server could not recompute the cells: %s" % exc)
