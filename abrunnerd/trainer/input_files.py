"""Bounded, read-only reading of the user's local files (documents, lists, project files).

Every file is hostile input: it must be a regular file (checked before it is opened,
and again on the open descriptor), it is read up to a size limit, JSON and YAML are
parsed safely (YAML with the safe loader: no Python objects), nesting depth and the
number of nodes are bounded (YAML aliases can make a small file expand without end),
and every problem becomes one :class:`DatasetError` line naming the file.  Nothing is
ever opened for writing.
"""
import json
import os
import stat
from typing import Any

from abrunnerd.trainer.errors import DatasetError
from abrunnerd.treelimits import TreeLimitExceeded, check_tree_limits

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024  # an extractor output with frames is a few MB; 64 MB is far beyond
MAX_LIST_BYTES = 64 * 1024 * 1024  # groundtruth / filelist (about 100 bytes per entry)
MAX_PROJECT_BYTES = 1024 * 1024  # a project file is a few kB
MAX_DEPTH = 32  # Essentia documents nest 4 levels deep
MAX_NODES = 20 * 1000 * 1000  # values visited when checking a parsed file (aliases count each time)


def problem(message: str) -> DatasetError:
    """A DatasetError of exactly one printable line: control characters of names and paths escaped."""
    return DatasetError("".join(c if c.isprintable() else repr(c)[1:-1] for c in message))


def read_bytes(path: str, limit: int, what: str) -> bytes:
    """The whole file, refused if it is not a regular file or larger than ``limit`` bytes."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise problem("%s %s does not exist" % (what, path)) from None
    except OSError as e:
        raise problem("%s %s cannot be read: %s" % (what, path, e.strerror or e)) from None
    if not stat.S_ISREG(st.st_mode):
        raise problem("%s %s is not a regular file; give a regular file" % (what, path))
    if st.st_size > limit:
        raise problem("%s %s is %d bytes, more than the limit of %d" % (what, path, st.st_size, limit))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise problem("%s %s cannot be opened: %s" % (what, path, e.strerror or e)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for something else since the stat
            raise problem("%s %s is not a regular file; give a regular file" % (what, path))
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise problem("%s %s is larger than the limit of %d bytes" % (what, path, limit))
    except OSError as e:
        raise problem("%s %s cannot be read: %s" % (what, path, e.strerror or e)) from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _text(data: bytes, path: str, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise problem("%s %s is not UTF-8 text (byte %d)" % (what, path, e.start)) from None


def _plain_key(key: Any) -> bool:
    return isinstance(key, (str, int)) and not isinstance(key, bool)


def check_tree(value: Any, path: str, what: str) -> None:
    """Depth, node count and key types of a parsed file (iterative: no recursion limit to hit)."""
    try:
        check_tree_limits(value, MAX_NODES, MAX_DEPTH, _plain_key)
    except TreeLimitExceeded as exc:
        if exc.kind == "nodes":
            raise problem("%s %s holds more than %d values (YAML aliases expanding?)"
                          % (what, path, MAX_NODES)) from None
        if exc.kind == "depth":
            raise problem("%s %s nests deeper than %d levels" % (what, path, MAX_DEPTH)) from None
        raise problem("%s %s has a key of type %s (%r); quote it to make it text"
                      % (what, path, type(exc.key).__name__, exc.key)) from None


def parse_json(data: bytes, path: str, what: str) -> Any:
    try:
        value = json.loads(_text(data, path, what))
    except ValueError as e:
        raise problem("%s %s is not valid JSON: %s" % (what, path, e)) from None
    except RecursionError:
        raise problem("%s %s nests deeper than %d levels" % (what, path, MAX_DEPTH)) from None
    check_tree(value, path, what)
    return value


def _safe_loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(data: bytes, path: str, what: str) -> Any:
    """Safe YAML (plain data only); a parse error names the line."""
    import yaml

    text = _text(data, path, what)
    try:
        value = yaml.load(text, Loader=_safe_loader())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = " at line %d" % (mark.line + 1) if mark is not None else ""
        reason = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise problem("%s %s is not valid YAML%s: %s" % (what, path, where, reason)) from None
    except RecursionError:
        raise problem("%s %s nests deeper than %d levels" % (what, path, MAX_DEPTH)) from None
    check_tree(value, path, what)
    return value


def read_mapping(path: str, limit: int, what: str, yaml_ok: bool = True) -> dict:
    """A JSON or YAML file whose top level must be a mapping."""
    data = read_bytes(path, limit, what)
    value = parse_yaml(data, path, what) if yaml_ok and not path.endswith(".json") else parse_json(data, path, what)
    if not isinstance(value, dict):
        raise problem("%s %s must be a mapping (key: value lines), not %s"
                           % (what, path, "empty" if value is None else type(value).__name__))
    return value
