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


def run_tasks(tasks: List[Task], on_cell: OnCell, workers: int,
              should_stop: Optional[Callable[[], bool]] = None) -> None:
    if not tasks:
        return
    if workers <= 1 or len(tasks) == 1:
        _run_here(tasks, on_cell, should_stop)
    else:
        _run_pool(tasks, on_cell, min(workers, len(tasks)), should_stop)


def _run_here(tasks: List[Task], on_cell: OnCell, should_stop: Optional[Callable[[], bool]]) -> None:
    for unit, cells in tasks:
        for cell, outcome in run_unit(unit, cells, should_stop):
            on_cell(unit.preprocessing, unit.fold, cell, outcome)
        if should_stop is not None and should_stop():
            raise TrainingStopped("stopped")
    if should_stop is not None and should_stop():
        raise TrainingStopped("stopped")


def _worker_main(tasks: "multiprocessing.Queue", results: "multiprocessing.Queue", stop, parent: int) -> None:
    """Take units until the sentinel; exit early on the stop event or when the parent is gone."""

    def should_stop() -> bool:
        return stop.is_set() or os.getppid() != parent

    try:
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


def _run_pool(tasks: List[Task], on_cell: OnCell, workers: int,
              should_stop: Optional[Callable[[], bool]]) -> None:
    ctx = multiprocessing.get_context("spawn")
    task_queue, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    remaining = sum(len(cells) for _, cells in tasks)
    for task in tasks:
        task_queue.put(task)
    for _ in range(workers):
        task_queue.put(None)
    procs = []
    with _single_threaded_blas():
        for _ in range(workers):
            p = ctx.Process(target=_worker_main, args=(task_queue, results, stop, os.getpid()))
            p.start()
            procs.append(p)
    exited = 0
    try:
        while remaining > 0:
            if should_stop is not None and should_stop():
                raise TrainingStopped("stopped")
            try:
                msg = results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead or (exited == 0 and all(p.exitcode is not None for p in procs)):
                    raise RuntimeError("a training worker process died (exit code %s)"
                                       % (dead[0].exitcode if dead else procs[0].exitcode))
                continue
            if msg[0] == "cell":
                _, prep, fold, cell, outcome = msg
                remaining -= 1
                on_cell(prep, fold, cell, outcome)
            elif msg[0] == "error":
                raise RuntimeError("a training worker failed:\n" + msg[1])
            else:
                exited += 1
                if exited == len(procs) and remaining > 0:
                    raise RuntimeError("the training workers exited with %d cells left" % remaining)
    finally:
        stop.set()
        for p in procs:
            p.join(STOP_GRACE_SECONDS if remaining == 0 else 1.0)
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(STOP_GRACE_SECONDS)
        for q in (task_queue, results):
            q.cancel_join_thread()
            q.close()
    if should_stop is not None and should_stop():
        raise TrainingStopped("stopped")
