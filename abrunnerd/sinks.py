"""Untrusted text encoded for the place it goes out to: one function per sink.

Text from the server (error messages, dataset and class names, redirect targets) and
from local files reaches sinks with their own grammars: a newline in an sd_notify
datagram starts a new assignment (``STATUS=x\\nREADY=1``), an escape sequence on a
terminal moves the cursor or rewrites the title, a newline in a log line forges the
next line, a NUL or lone surrogate makes dbus-python raise. Each function here makes
any text safe for one sink and bounds its length; docs/runner.md lists which sink
uses which. Pure functions, standard library only.
"""
import logging
import string
from typing import Any

# Unicode bidirectional controls: they reorder what a reader sees ("Trojan Source").
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_FILE_CHARS = frozenset(string.ascii_letters + string.digits + "-_.")
LOG_LIMIT = 4000
NOTIFY_LIMIT = 400
DBUS_LIMIT = 4000
TERMINAL_LIMIT = 4000


def _escape_char(c: str) -> str:
    code = ord(c)
    if code < 0x100:
        return "\\x%02x" % code
    if code < 0x10000:
        return "\\u%04x" % code
    return "\\U%08x" % code


def _unsafe(c: str) -> bool:
    code = ord(c)
    return code < 32 or 0x7f <= code < 0xa0 or c in _BIDI or c in _LINE_BREAKS or 0xd800 <= code < 0xe000


def _escaped(text: Any, limit: int, keep: str = "") -> str:
    text = text if isinstance(text, str) else str(text)
    out = "".join(_escape_char(c) if _unsafe(c) and c not in keep else c for c in text[:limit])
    return out + ("…" if len(text) > limit else "")


def log_text(text: Any, limit: int = LOG_LIMIT) -> str:
    """One log line (stderr, syslog, a log file, journald's MESSAGE): no line breaks, no
    control or bidi characters (escaped as \\xNN so nothing is hidden), bounded."""
    return _escaped(text, limit)


def journal_field(text: Any, limit: int = 1000) -> str:
    """A journald field value (JOB_ID, STAGE…): one line, no NUL, bounded."""
    return _escaped(text, limit)


def notify_status(text: Any, limit: int = NOTIFY_LIMIT) -> str:
    """The value of an sd_notify assignment (``STATUS=``): a newline would start a new
    assignment such as ``READY=1`` or ``MAINPID=``, so none survives."""
    return _escaped(text, limit)


def dbus_string(text: Any, limit: int = DBUS_LIMIT) -> str:
    """A D-Bus string: valid UTF-8 without NUL (dbus-python refuses both), bounded.
    Line breaks are kept escaped too, so a status reader sees one line per value."""
    return _escaped(text, limit)


def terminal(text: Any, limit: int = TERMINAL_LIMIT) -> str:
    """Text for abrunnerctl's terminal: no escape sequences (ESC, CSI, OSC…), no bidi
    reordering, no carriage return overwriting the line; newlines only where the caller
    prints them."""
    return _escaped(text, limit)


def file_name(text: Any, limit: int = 64) -> str:
    """A single file-name component from arbitrary text: ASCII letters, digits and
    ``-_.`` only, never ``.``/``..`` or hidden. Ids never need this (their names are
    their canonical UUIDs); it is for names found on disk (quarantine)."""
    text = text if isinstance(text, str) else str(text)
    name = "".join(c if c in _FILE_CHARS else "_" for c in text[:limit]).lstrip(".")
    return name or "unnamed"


class LogSinkFilter(logging.Filter):
    """Installed on every log handler of the daemon: the formatted message and the job
    fields become log-safe, whatever the arguments held."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = "%s %r" % (record.msg, record.args)
        record.msg, record.args = log_text(message), None
        for key in ("JOB_ID", "DATASET_ID", "STAGE", "PROGRESS"):
            value = getattr(record, key, None)
            if value is not None:
                setattr(record, key, journal_field(value))
        return True
