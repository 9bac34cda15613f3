"""Record each reliability case as one JSON line, for ``tools/reliability-report``.

Why JSON lines in a directory: tests of one category may run in several processes
(the suite, the long form, a rerun of one file), and appending a line is atomic
enough for that; the report reads every ``*.jsonl`` under the directory.
The directory is ``$ABRUNNERD_RELIABILITY_OUT`` (default: a fresh temp dir).
"""
import json
import os
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

CATEGORIES = ("crashes", "server_faults", "network_faults", "disk_faults",
              "bad_input", "security", "load", "hostile")

_default_out: Optional[Path] = None


def out_dir() -> Path:
    """The results directory, created on first use."""
    global _default_out
    env = os.environ.get("ABRUNNERD_RELIABILITY_OUT")
    if env:
        path = Path(env)
    else:
        if _default_out is None:
            _default_out = Path(tempfile.mkdtemp(prefix="abr-reliability-"))
        path = _default_out
    path.mkdir(parents=True, exist_ok=True)
    return path


def captures_dir() -> Path:
    """Where harnesses keep every captured stdout/stderr/journal/reply (grepped for tokens)."""
    path = out_dir() / "captures"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Case:
    """One case's outcome; fields are filled by the test while it runs."""

    def __init__(self, category: str, name: str) -> None:
        if category not in CATEGORIES:
            raise ValueError("unknown reliability category %r" % category)
        self.category = category
        self.name = name
        self.survived = True
        self.data_lost = 0
        self.message = ""  # for bad input: the exact error text the user sees
        self.extra: Dict[str, Any] = {}

    def as_dict(self) -> Dict[str, Any]:
        return {"category": self.category, "case": self.name, "survived": self.survived,
                "data_lost": self.data_lost, "message": self.message, "extra": self.extra,
                "time": time.time(), "long": bool(os.environ.get("ABRUNNERD_LONG"))}


def write(case: Case) -> None:
    line = json.dumps(case.as_dict(), sort_keys=True, default=str)
    with open(out_dir() / ("%s.jsonl" % case.category), "a", encoding="utf-8") as f:
        f.write(line + "\n")


@contextmanager
def case(category: str, name: str) -> Iterator[Case]:
    """Run a case; an exception inside marks it not survived (and is re-raised)."""
    c = Case(category, name)
    try:
        yield c
    except BaseException as exc:  # noqa: B902 - record, then re-raise as is
        c.survived = False
        if not c.message:
            c.message = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:500]
        raise
    finally:
        write(c)


def record_figures(name: str, figures: Dict[str, Any]) -> None:
    """Store measured figures (load test) next to the cases."""
    c = Case("load", name)
    c.extra = figures
    c.survived = bool(figures.get("survived", True))
    c.data_lost = int(figures.get("double_assigned", 0))
    write(c)
