"""Logging to journald with structured fields, or syslog, or stderr.

Job lines carry ``JOB_ID``, ``DATASET_ID``, ``STAGE``, ``PROGRESS`` (and a ``MESSAGE_ID``
for key events) as journal fields; on stderr they become a ``[job=… stage=…]`` suffix so
they can be read and grepped the same way.
"""
import logging
import logging.handlers
import os
import sys
from typing import Any, Dict, Optional

LOGGER_NAME = "abrunnerd"
JOB_FIELDS = ("JOB_ID", "DATASET_ID", "STAGE", "PROGRESS", "MESSAGE_ID")
JOURNAL_SOCKET = "/run/systemd/journal/socket"


class _StderrFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [(k, getattr(record, k)) for k in JOB_FIELDS if getattr(record, k, None) is not None]
        if fields:
            text += " [" + " ".join("%s=%s" % (k.lower(), v) for k, v in fields) + "]"
        return text


def setup_logging(target: str = "auto", level: str = "info", fallback_file: Optional[str] = None) -> str:
    """Install one handler on the ``abrunnerd`` logger; return the target chosen.

    ``fallback_file`` replaces stderr as the last resort (a detached daemon has none)."""
    logger = logging.getLogger(LOGGER_NAME)
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    logger.setLevel(getattr(logging, level.upper(), logging.INFO))
    logger.propagate = False
    handler: Optional[logging.Handler] = None
    chosen = target
    if target in ("auto", "journal"):
        handler = _journal_handler(required=target == "journal")
        chosen = "journal" if handler else "stderr"
    if target == "syslog" and os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler(address="/dev/log",
                                                 facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        handler.setFormatter(_StderrFormatter("abrunnerd[%(process)d]: %(message)s"))
    if handler is None and fallback_file:
        chosen = fallback_file
        handler = logging.FileHandler(fallback_file)
        handler.setFormatter(_StderrFormatter("%(asctime)s abrunnerd[%(process)d] %(levelname)s: %(message)s"))
    if handler is None:
        chosen = "stderr"
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_StderrFormatter("%(asctime)s abrunnerd %(levelname)s: %(message)s"))
    from abrunnerd.sinks import LogSinkFilter

    handler.addFilter(LogSinkFilter())  # untrusted text is encoded for the log sink (sinks.py)
    logger.addHandler(handler)
    return chosen


def _journal_handler(required: bool) -> Optional[logging.Handler]:
    # Under systemd stderr goes to the journal anyway; talk to it directly for the fields.
    if not required and not (os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID")):
        return None
    if not os.path.exists(JOURNAL_SOCKET):
        return None
    try:
        from systemd import journal
    except ImportError:
        return None
    handler = journal.JournalHandler(SYSLOG_IDENTIFIER="abrunnerd")
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def job_fields(job_id: Optional[str], dataset_id: Optional[str] = None, stage: Optional[str] = None,
               progress: Optional[float] = None, message_id: Optional[str] = None) -> Dict[str, Any]:
    """The ``extra=`` of a job line."""
    extra: Dict[str, Any] = {"JOB_ID": job_id, "DATASET_ID": dataset_id, "STAGE": stage}
    if progress is not None:
        extra["PROGRESS"] = "%.0f%%" % (100 * progress)
    if message_id:
        extra["MESSAGE_ID"] = message_id
    return {k: v for k, v in extra.items() if v is not None}
