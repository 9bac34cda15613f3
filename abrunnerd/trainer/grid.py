"""Running grid cells: in this process, or spread over worker processes by (preprocessing, fold) unit.

The parent owns the checkpoint and the progress callback: workers send each finished
cell back at once, so a kill loses at most the cells being fitted.  Workers are
spawned (not forked: the caller may hold threads) with single-threaded BLAS, and they
check a stop event between cells.
"""
import multiprocessing
import os
import queue
import traceback
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from abrunnerd.trainer.cells import Cell, CellOutcome, UnitInput, run_unit
from abrunnerd.trainer.errors import TrainingStopped

Task = Tuple[UnitInput, Sequence[Cell]]
OnCell = Callable[[str, int, Cell, CellOutcome], None]
POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 5.0
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
# Cost model (seconds on one core of the 2-core test machine; benchmarks/train_grid.py --profile):
# one cell = one SVC fit + predict on a precomputed kernel, dominated by libsvm's solver;
# starting the pool = spawning interpreters that import numpy + scikit-learn and receive the data.
CELL_BASE_SECONDS = 1e-4
CELL_SECONDS_PER_PAIR = 1.3e-8  # x n_train^2
POOL_START_SECONDS = 1.5


def estimate_cell_seconds(n_recordings: int, nfold: int) -> float:
    n_train = n_recordings * (nfold - 1) / float(nfold)
    return CELL_BASE_SECONDS + CELL_SECONDS_PER_PAIR * n_train * n_train


def useful_workers(requested: int, n_recordings: int, cells: int, units: int, nfold: int) -> int:
    """How many worker processes finish the grid soonest: 1 (in this process) unless the
    estimated compute time saved by ``w`` processes exceeds the cost of starting them;
    never more than the units to run or the CPUs."""
    w = max(1, min(int(requested), int(units), os.cpu_count() or 1))
    if w == 1:
        return 1
    compute = cells * estimate_cell_seconds(n_recordings, nfold)
    return w if POOL_START_SECONDS + compute / w < compute else 1


def run_tasks(tasks: List[Task], on_cell: OnCell, pool: Optional["WorkerPool"] = None,
              should_stop: Optional[Callable[[], bool]] = None) -> None:
    """Run every task's cells, in ``pool`` if given (and useful), otherwise in this process."""
    if not tasks:
        return
    if pool is None or len(tasks) == 1:
        _run_here(tasks, on_cell, should_stop)
    else:
        pool.run(tasks, on_cell, should_stop)


def _run_here(tasks: List[Task], on_cell: OnCell, should_stop: Optional[Callable[[], bool]]) -> None:
    for unit, cells in tasks:
        for cell, outcome in run_unit(unit, cells, should_stop):
            on_cell(unit.preprocessing, unit.fold, cell, outcome)
        if should_stop is not None and should_stop():
            raise TrainingStopped("stopped")
    if should_stop is not None and should_stop():
        raise TrainingStopped("stopped")


def _worker_main(tasks: "multiprocessing.Queue", results: "multiprocessing.Queue", stop, parent: int) -> None:
    """Import scikit-learn, then take units until the sentinel; exit early on stop or when the parent is gone."""

    def should_stop() -> bool:
        return stop.is_set() or os.getppid() != parent

    try:
        import sklearn.svm  # noqa: F401  (warm up while the parent prepares the data)

        while not should_stop():
            try:
                task = tasks.get(timeout=1.0)
            except queue.Empty:
                continue
            if task is None:
                break
            unit, cells = task
            for cell, outcome in run_unit(unit, cells, should_stop):
                results.put(("cell", unit.preprocessing, unit.fold, cell, outcome))
    except KeyboardInterrupt:
        pass
    except BaseException:  # report, then die: the parent turns it into an error
        results.put(("error", traceback.format_exc()))
    results.put(("exit", os.getpid()))


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: "1" for k in THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class WorkerPool:
    """Spawned worker processes, started before the data is prepared so their imports overlap it."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.procs: List["multiprocessing.process.BaseProcess"] = []
        ctx = multiprocessing.get_context("spawn")
        self._ctx = ctx
        self._tasks, self._results, self._stop = ctx.Queue(), ctx.Queue(), ctx.Event()

    def __enter__(self) -> "WorkerPool":
        with _single_threaded_blas():
            for _ in range(self.workers):
                p = self._ctx.Process(target=_worker_main, args=(self._tasks, self._results, self._stop, os.getpid()))
                p.start()
                self.procs.append(p)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, tasks: List[Task], on_cell: OnCell, should_stop: Optional[Callable[[], bool]]) -> None:
        remaining = sum(len(cells) for _, cells in tasks)
        for task in tasks:
            self._tasks.put(task)
        while remaining > 0:
            if should_stop is not None and should_stop():
                raise TrainingStopped("stopped")
            try:
                msg = self._results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                dead = [p for p in self.procs if p.exitcode is not None]
                if len(dead) == len(self.procs) or any(p.exitcode != 0 for p in dead):
                    raise RuntimeError("a training worker process died (exit code %s) with %d cells left"
                                       % (dead[0].exitcode, remaining))
                continue
            if msg[0] == "cell":
                _, prep, fold, cell, outcome = msg
                remaining -= 1
                on_cell(prep, fold, cell, outcome)
            elif msg[0] == "error":
                raise RuntimeError("a training worker failed:\n" + msg[1])
        if should_stop is not None and should_stop():
            raise TrainingStopped("stopped")

    def close(self) -> None:
        """Ask the workers to finish, then stop the ones that do not."""
        if not self.procs:
            return
        for _ in self.procs:
            self._tasks.put(None)
        self._stop.set()
        for p in self.procs:
            p.join(STOP_GRACE_SECONDS)
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(STOP_GRACE_SECONDS)
        for q in (self._tasks, self._results):
            q.cancel_join_thread()
            q.close()
        self.procs = []
