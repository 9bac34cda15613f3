"""Gaia descriptor-name patterns (pipeline spec §5).

``*``, ``?`` and ``[...]`` are wildcards, everything else literal.  A pattern starting
with ``.`` or ``*`` must match the whole full name; any other pattern ``P`` must match a
trailing part of the name that starts at a dot (Gaia finds the leftmost match of ``.P``
and accepts it if it reaches the end), and all its matches must share the same prefix.
"""
import fnmatch
import re
from functools import lru_cache
from typing import Iterable, List, Optional, Sequence


class PatternError(ValueError):
    """A pattern matched nothing or is ambiguous."""

    def __init__(self, pattern: str, message: str) -> None:
        super().__init__(message)
        self.pattern = pattern


@lru_cache(maxsize=256)
def _regex(pattern: str) -> "re.Pattern":
    body = fnmatch.translate(pattern)  # "(?s:...)\Z"
    assert body.endswith(r"\Z")
    body = body[:-2]
    if pattern.startswith(".") or pattern.startswith("*"):
        return re.compile(body + r"\Z")
    return re.compile(r"\." + body)


def match_one(pattern: str, names: Iterable[str]) -> List[str]:
    """Names matched by one pattern, in the given order; raises PatternError if ambiguous."""
    rx = _regex(pattern)
    full = pattern.startswith(".") or pattern.startswith("*")
    out, prefixes = [], set()
    for name in names:
        if full:
            if rx.match(name):
                out.append(name)
            continue
        m = rx.search(name)
        if m and m.end() == len(name):
            out.append(name)
            prefixes.add(name[:m.start()])
    if len(prefixes) > 1:
        raise PatternError(pattern, "pattern %r is ambiguous: it matches under %s"
                           % (pattern, ", ".join(sorted(p or "(root)" for p in prefixes))))
    return out


def resolve(patterns: Sequence[str], names: Sequence[str], excepts: Sequence[str] = (),
            fail_on_unmatched: bool = True) -> List[str]:
    """Gaia's pattern-list resolution: matches of each pattern in turn (sorted names), minus ``excepts``."""
    ordered = sorted(names)
    out: List[str] = []
    seen = set()
    for pattern in patterns:
        found = match_one(pattern, ordered)
        if not found and fail_on_unmatched and pattern != "*":
            raise PatternError(pattern, "pattern %r didn't match any descriptor" % pattern)
        for name in found:
            if name not in seen:
                seen.add(name)
                out.append(name)
    drop = set(resolve(excepts, ordered, fail_on_unmatched=False)) if excepts else set()
    return [n for n in out if n not in drop]


def first_match(pattern: str, names: Iterable[str]) -> Optional[str]:
    try:
        found = match_one(pattern, sorted(names))
    except PatternError:
        return None
    return found[0] if found else None
