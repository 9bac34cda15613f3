"""Identifiers from the server (job, dataset, recording ids) as checked values.

The protocol's ids are UUIDs (docs/protocol.md, decisions 7c). They are checked and
canonicalised (lower case, hyphenated) where they enter the runner, so that
everything downstream, including the file names derived from them, can only ever see
36 characters of ``[0-9a-f-]``: an id can never name a path.
"""
import re
from typing import Any

_UUID = re.compile(r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")


class BadId(ValueError):
    """A value that is not an id in the protocol's form; the message says which and why."""


def canonical_uuid(value: Any, what: str = "id") -> str:
    """``value`` as a lower-case hyphenated UUID, or BadId (never a path, never a guess)."""
    if not isinstance(value, str):
        raise BadId("%s must be a UUID string, not %s" % (what, type(value).__name__))
    if not _UUID.match(value):
        raise BadId("%s %s is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)" % (what, _preview(value)))
    return value.lower()


def is_canonical_uuid(value: Any) -> bool:
    return isinstance(value, str) and bool(_UUID.match(value)) and value == value.lower()


def _preview(value: str) -> str:
    """A short, printable rendering of a refused value for a message."""
    from abrunnerd.sinks import log_text

    shown = log_text(value, 40)
    return "'%s'" % (shown if len(shown) <= 80 else shown[:80] + "…")
