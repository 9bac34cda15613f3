"""Untrusted text on its way to a terminal or a log, and identifiers arriving as text."""
import re
import uuid
from typing import Any, Optional

# C0/C1 controls, DEL, and the bidirectional overrides/isolates that reorder what a terminal
# shows (Trojan Source): runner names, messages and reasons come from other people's machines.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def sanitize(value: Any, limit: int = 200) -> str:
    """``value`` as one printable line: control characters escaped (``\\x1b``), cut at ``limit``."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return _UNSAFE.sub(lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 0x100
                       else "\\u%04x" % ord(m.group()), text)


def canonical_uuid(value: Any) -> Optional[str]:
    """Lower-case hyphenated text of a UUID given in any form Python reads (upper case,
    braces, ``urn:uuid:``, no hyphens), or None when it is not a UUID."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        return None


def truncated_list(items, limit: int = 10, each: int = 64) -> str:
    """``a, b, c and 17 more``: error messages name a few offenders, never thousands."""
    items = list(items)
    shown = ", ".join(sanitize(i, each) for i in items[:limit])
    return shown + (" and %d more" % (len(items) - limit) if len(items) > limit else "")
