"""Find secrets in captured text: the whole token, or any 16-character piece of it.

Why pieces: a log line that shows "token 3f9a…c2" style fragments of 16+ characters
still hands out most of the secret; shorter prefixes (as GitLab shows) are allowed.
"""
from pathlib import Path
from typing import Iterable, List, Set, Tuple

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


def find_in_text(text: str, secrets: Iterable[str]) -> List[str]:
    """The secrets (whole) of which some piece occurs in ``text``."""
    return sorted({s for s in secrets if any(p in text for p in pieces(s))})


def find_in_files(paths: Iterable[Path], secrets: Iterable[str]) -> List[Tuple[str, str]]:
    """(path, token-prefix) for every file that contains a piece of a secret."""
    secrets = list(secrets)
    hits = []
    for p in paths:
        try:
            text = p.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            continue
        for s in find_in_text(text, secrets):
            hits.append((str(p), s[:4] + "…"))
    return hits
