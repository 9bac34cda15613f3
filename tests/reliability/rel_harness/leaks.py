"""Find secrets in captured text: the whole token, or any 16-character piece of it.

Why pieces: a log line that shows "token 3f9a…c2" style fragments of 16+ characters
still hands out most of the secret; shorter prefixes (as GitLab shows) are allowed.
"""
import re
from pathlib import Path
from typing import Dict, Iterable, List, Set, Tuple

_tokens: Set[str] = set()
_files: Set[str] = set()
PIECE = 16


def register(token: str) -> str:
    """Remember a token the suite created, so the final grep looks for it."""
    if token:
        _tokens.add(token)
    return token


def tokens() -> Set[str]:
    return set(_tokens)


def register_file(path: object) -> None:
    """A file outside the captures dir the final grep must read too (a server database)."""
    _files.add(str(path))


def files() -> Set[str]:
    return set(_files)


def pieces(token: str) -> List[str]:
    if len(token) <= PIECE:
        return [token]
    return [token[i:i + PIECE] for i in range(0, len(token) - PIECE + 1)]


_RUN = re.compile(rb"[0-9A-Za-z]{%d,}" % PIECE)


def _table(secrets: Iterable[str]) -> Dict[bytes, str]:
    return {p.encode("utf-8"): s for s in secrets for p in pieces(s)}


def _scan(data: bytes, table: Dict[bytes, str]) -> Set[str]:
    """Secrets with a piece in ``data``: only alphanumeric runs of 16+ bytes can hold one
    (tokens are alphanumeric), so the scan is linear in the data, not in data x pieces."""
    found = set()
    for m in _RUN.finditer(data):
        run = m.group()
        for i in range(len(run) - PIECE + 1):
            hit = table.get(run[i:i + PIECE])
            if hit is not None:
                found.add(hit)
    return found


def find_in_text(text: str, secrets: Iterable[str]) -> List[str]:
    """The secrets (whole) of which some piece occurs in ``text``."""
    return sorted(_scan(text.encode("utf-8", "replace"), _table(secrets)))


def find_in_files(paths: Iterable[Path], secrets: Iterable[str]) -> List[Tuple[str, str]]:
    """(path, token-prefix) for every file that contains a piece of a secret."""
    table = _table(secrets)
    hits = []
    for p in paths:
        try:
            data = Path(p).read_bytes()
        except OSError:
            continue
        for s in sorted(_scan(data, table)):
            hits.append((str(p), s[:4] + "…"))
    return hits
