"""Names for the training processes, so `systemctl status abrunnerd`'s CGroup tree and
`ps` say what they are instead of ``python3 -c "from multiprocessing.spawn …"``.

With python3-setproctitle (recommended by the package) the whole command line shown is
replaced; without it the kernel's 15-byte process name (``comm``: `ps -o comm`, `top`,
`pgrep`) is set with prctl(PR_SET_NAME), and the command line stays as it was.
"""
import ctypes
import os

PR_SET_NAME = 15
TITLE_ENV = "ABRUNNERD_PROC_TITLE"  # inherited by the trainer's spawned pool processes


def set_title(title: str, comm: str) -> str:
    """Set the title (setproctitle) or the short name (PR_SET_NAME); return which was set."""
    try:
        import setproctitle  # type: ignore
    except ImportError:
        pass
    else:
        setproctitle.setproctitle(title)
        return "title"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(comm.encode("ascii", "replace")[:15]), 0, 0, 0)
        return "comm"
    except (OSError, AttributeError):
        return ""


def name_training_process(job_id: str, nice: int) -> None:
    """The training process itself; its pool processes inherit the title's job part."""
    short = "".join(c for c in job_id[:8] if c.isalnum() or c == "-")
    os.environ[TITLE_ENV] = short
    set_title("abrunnerd: training job %s (nice %d)" % (short, nice), "abrunnerd-train")


def name_pool_process() -> None:
    short = os.environ.get(TITLE_ENV, "")
    set_title("abrunnerd: trainer pool process%s" % (" (job %s)" % short if short else ""), "abrunnerd-pool")
