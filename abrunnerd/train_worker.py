"""The training process: ``python3 -m abrunnerd.train_worker JOB_DIR``.

Reads ``JOB_DIR/spec.json`` (written by the runner), loads the features (the server's
bundle, or an AB-form directory fetched through ``/low-level``), trains with the
trainer's process pool, checkpointing after every grid cell, and writes
``result.json`` + ``model.history`` (or ``error.json``). Progress goes to
``progress.json``. Exit status: 0 done, 2 bad dataset (error.json says why),
3 stopped on SIGTERM (checkpoint kept), 1 anything else.

``--estimate`` reads {"n_recordings", "options", "workers"} on stdin and prints the
trainer's peak-memory estimate in bytes.
"""
import ctypes
import json
import os
import platform
import signal
import sys
import traceback
from typing import Any, Dict, Optional

from abrunnerd import __version__, atomic

DONE, CRASHED, DATASET_ERROR, STOPPED = 0, 1, 2, 3
PR_SET_PDEATHSIG = 1
IOPRIO_WHO_PROCESS, IOPRIO_CLASS_IDLE = 1, 3
_SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "i686": 289, "armv7l": 314, "ppc64le": 273,
                   "s390x": 282, "riscv64": 30}


def be_polite() -> None:
    """Nice, idle I/O class, and die with the daemon."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    parent = os.environ.get("ABRUNNERD_PARENT_PID")
    if parent and parent.isdigit() and os.getppid() != int(parent):
        os._exit(CRASHED)  # the daemon died before prctl took effect
    nice = int(os.environ.get("ABRUNNERD_NICE", "10"))
    if nice:
        os.nice(nice)
    number = _SYS_IOPRIO_SET.get(platform.machine())
    if number is not None:
        libc.syscall(number, IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << 13)


BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def single_threaded_blas() -> None:
    """One BLAS thread in this process; call it before numpy is imported.  The fits are
    libsvm's (single-threaded), and on a small job a second BLAS thread only spins:
    ab-real-1's AB grid took 3.6-4.1 CPU-s with two threads and 2.9-3.2 with one, in the
    same wall time (benchmarks/train_grid.py).  The pool's workers get one thread anyway
    (grid.py); a value the caller set is kept."""
    for name in BLAS_THREAD_VARS:
        os.environ.setdefault(name, "1")


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


if __name__ == "__mp_main__":
    # The trainer's pool processes are spawned and import this module as __mp_main__:
    # tie them to the training process, so a kill -9 of the daemon (which kills the
    # training process through its own PDEATHSIG) leaves nothing computing.
    _die_with_parent()
    from abrunnerd.proctitle import name_pool_process
    name_pool_process()


def snapshot_groundtruth(dataset: Any) -> Dict[str, str]:
    """``{mbid: class}`` from the job's dataset snapshot, or a DatasetError naming the bad field."""
    from abrunnerd.trainer import DatasetError

    if not isinstance(dataset, dict):
        raise DatasetError("malformed job: 'dataset' is %s, expected an object" % type(dataset).__name__)
    classes = dataset.get("classes")
    if not isinstance(classes, list):
        raise DatasetError("malformed job: dataset 'classes' is %s, expected a list of "
                           "{name, recordings} objects" % ("missing" if classes is None else type(classes).__name__))
    groundtruth = {}  # type: Dict[str, str]
    for index, cls in enumerate(classes):
        name = cls.get("name") if isinstance(cls, dict) else None
        recordings = cls.get("recordings") if isinstance(cls, dict) else None
        if not isinstance(name, str) or not isinstance(recordings, list) or \
                not all(isinstance(m, str) for m in recordings):
            raise DatasetError("malformed job: dataset 'classes[%d]' must be an object with a string "
                               "'name' and a list of recording MBIDs in 'recordings'" % index)
        for mbid in recordings:
            groundtruth[mbid] = name  # AB: a recording in two classes belongs to the later one
    return groundtruth


def _max_memory(value: Any) -> Optional[int]:
    """The runner's max_memory (bytes) from the spec, None when unset or not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def load_dataset(job_dir: str, spec: Dict[str, Any]) -> Any:
    from abrunnerd.trainer import load_dataset_dir

    if spec.get("source") == "abdata":
        return load_dataset_dir(os.path.join(job_dir, "abdata"))
    from abrunnerd.features_bundle import BundleError, decode_limit
    from abrunnerd.trainer.bundle import dataset_from_bundle

    dataset = spec["dataset"]
    groundtruth = snapshot_groundtruth(dataset)
    limit = decode_limit(len(groundtruth), _max_memory(spec.get("max_memory")))
    with open(os.path.join(job_dir, "features.bin"), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:  # xz never makes data this much larger
            raise BundleError("features bundle is %d bytes, more than the %d this job's %d recordings may take"
                              % (size, limit, len(groundtruth)))
        data = f.read(limit + 1)
    return dataset_from_bundle(data, dataset.get("name") or spec["job_id"], groundtruth, max_decompressed=limit)


def run(job_dir: str) -> int:
    stop = {"flag": False}

    def on_term(signum: int, frame: Any) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    single_threaded_blas()
    be_polite()
    spec = atomic.read_json(os.path.join(job_dir, "spec.json"))
    from abrunnerd.proctitle import name_training_process
    name_training_process(str(spec.get("job_id") or ""), int(os.environ.get("ABRUNNERD_NICE", "10")))
    progress_path = os.path.join(job_dir, "progress.json")

    def progress(p: Any) -> None:
        atomic.write_json(progress_path, {
            "stage": p.stage, "cells_done": p.cells_done, "cells_total": p.cells_total,
            "eta_seconds": p.eta_seconds, "message": p.message}, durable=False)

    from abrunnerd.features_bundle import BundleError
    from abrunnerd.trainer import DatasetError, TrainingStopped, TrainOptions, train
    from abrunnerd.trainer.memory import kernel_budget

    try:
        ds = load_dataset(job_dir, spec)
        opts = TrainOptions.from_job_options(spec.get("options") or {}, seed=int(spec.get("seed", 42)))
        res = train(ds, opts, workers=int(spec.get("max_workers") or 1),
                    checkpoint_path=os.path.join(job_dir, "checkpoint"),
                    progress=progress, should_stop=lambda: stop["flag"],
                    memory_budget=kernel_budget(_max_memory(spec.get("max_memory"))), release_documents=True)
    except TrainingStopped:
        return STOPPED
    except BundleError as exc:  # hostile or corrupt download: one line, the job fails with the reason
        reason = "features bundle refused: %s" % exc
        atomic.write_json(os.path.join(job_dir, "error.json"), {"kind": "dataset", "message": reason})
        print(reason, file=sys.stderr)
        return DATASET_ERROR
    except (DatasetError, ValueError, KeyError) as exc:
        reason = str(exc) if isinstance(exc, DatasetError) else "malformed job or dataset: %s: %s" % (
            type(exc).__name__, exc)
        atomic.write_json(os.path.join(job_dir, "error.json"), {"kind": "dataset", "message": reason})
        traceback.print_exc()
        return DATASET_ERROR
    from abrunnerd.gaia.history import write_history
    import numpy
    import sklearn

    result = res.to_result_json()
    result["runner"] = {"name": spec.get("runner_name", ""), "version": __version__,
                        "python": platform.python_version(), "sklearn": sklearn.__version__,
                        "numpy": numpy.__version__}
    write_history(res.model.steps, os.path.join(job_dir, "model.history"))
    atomic.write_json(os.path.join(job_dir, "result.json"), result)
    return DONE


def estimate() -> int:
    from abrunnerd.trainer import TrainOptions, estimate_peak_memory
    from abrunnerd.trainer.memory import kernel_budget

    query = json.loads(sys.stdin.read(1 << 20))
    opts = TrainOptions.from_job_options(query.get("options") or {}, seed=42)
    budget = kernel_budget(_max_memory(query.get("max_memory")))
    print(int(estimate_peak_memory(int(query["n_recordings"]), opts, workers=int(query.get("workers", 1)),
                                   memory_budget=budget)))
    return 0


def main(argv: Any = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--estimate"]:
        return estimate()
    if len(args) != 1:
        print("usage: python3 -m abrunnerd.train_worker JOB_DIR | --estimate", file=sys.stderr)
        return 64
    try:
        return run(args[0])
    except Exception as exc:
        traceback.print_exc()
        try:
            atomic.write_json(os.path.join(args[0], "error.json"),
                              {"kind": "crash", "message": "%s: %s" % (type(exc).__name__, exc)})
        except OSError:
            pass
        return CRASHED


def exit_now(code: int) -> None:
    """Leave without the interpreter's teardown: with numpy, scipy and scikit-learn loaded,
    freeing every module costs 0.1-0.25 CPU-s (benchmarks/train_grid.py's floor analysis),
    a tenth of a small job.  Everything this process leaves behind is already written
    (result, model, error, checkpoint: written and renamed; worker processes joined)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
