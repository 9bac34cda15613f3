"""Low-level documents from local files: AB/Essentia JSON, Essentia YAML, directories, JSON Lines.

Every read is bounded (:data:`MAX_DOCUMENT_BYTES` per document, :data:`MAX_DEPTH` levels,
:data:`MAX_NODES` values) and every failure is a :class:`DocumentError` naming the
document, so one bad file never stops a batch.  Callers get plain JSON-like trees
(dict/list/str/float/int/bool/None); what a model needs from them is decided elsewhere.

API (shared by ``abrunnerctl predict`` and the trainer's local readers):

* :func:`expand_inputs` -- paths / directories / ``-`` to :class:`Source` items, lazily,
  directories walked in sorted order without following symlinked directories;
* :func:`load_source` -- one :class:`Source` to a document (or raises DocumentError);
* :func:`parse_document` -- bytes to a document, by format ("json" or "yaml");
* :func:`iter_json_lines` -- (line number, bytes) of a JSON Lines stream, bounded per line.
"""
import json
import os
import stat
from typing import Any, BinaryIO, Iterator, List, NamedTuple, Optional, Tuple

from abrunnerd.treelimits import TreeLimitExceeded, check_tree_limits

MAX_DOCUMENT_BYTES = 64 << 20  # an Essentia extractor JSON with frames is a few MB
MAX_DEPTH = 64
MAX_NODES = 2000000
SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}


class DocumentError(ValueError):
    """A document cannot be read or parsed; the message says which one and why."""


class Source(NamedTuple):
    """Where one document comes from: a file (``path``) or line ``line`` of standard input."""
    name: str  # for messages and JSON Lines output: the path, or "-:LINE"
    path: Optional[str]
    relative: str  # path below the directory it was found in ("" for stdin)
    line: int = 0
    data: Optional[bytes] = None  # the line's bytes for stdin documents


def document_format(path: str) -> str:
    """"json" or "yaml" by file name; JSON for anything else (AB's API saves .json)."""
    return SUFFIXES.get(os.path.splitext(path)[1].lower(), "json")


def expand_inputs(inputs: List[str], stdin: Optional[BinaryIO] = None) -> Iterator[Source]:
    """Sources in command-line order; a directory yields its *.json/*.yaml/*.yml files, sorted."""
    for item in inputs:
        if item == "-":
            if stdin is None:
                raise DocumentError("'-' given but no standard input available")
            for line_no, data in iter_json_lines(stdin):
                yield Source("-:%d" % line_no, None, "", line_no, data)
        elif os.path.isdir(item):
            for root, dirs, files in os.walk(item):
                dirs.sort()
                for name in sorted(files):
                    if os.path.splitext(name)[1].lower() in SUFFIXES:
                        path = os.path.join(root, name)
                        yield Source(path, path, os.path.relpath(path, item))
        else:
            yield Source(item, item, os.path.basename(item))


def iter_json_lines(stream: BinaryIO, limit: int = MAX_DOCUMENT_BYTES) -> Iterator[Tuple[int, bytes]]:
    """(line number, bytes) of each non-blank line; a line over ``limit`` is yielded as b"" + error marker."""
    line_no = 0
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        line_no += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # skip the rest of the oversized line without keeping it
                rest = stream.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield line_no, b"\0too-long"
            continue
        if line.strip():
            yield line_no, line


def load_source(source: Source) -> Any:
    """The document of one source; DocumentError (message without the source name) otherwise."""
    if source.path is None:
        if source.data == b"\0too-long":
            raise DocumentError("line is longer than %d bytes" % MAX_DOCUMENT_BYTES)
        return parse_document(source.data or b"", "json")
    return parse_document(read_file(source.path), document_format(source.path))


def read_file(path: str, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """A regular file's bytes, at most ``limit``; FIFOs, devices and directories are refused unopened."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise DocumentError("not a regular file")
        if st.st_size > limit:
            raise DocumentError("%d bytes, more than the %d allowed for a document" % (st.st_size, limit))
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise DocumentError("cannot read: %s" % (exc.strerror or exc)) from None
    if len(data) > limit:
        raise DocumentError("more than the %d bytes allowed for a document" % limit)
    return data


def parse_document(data: bytes, fmt: str) -> Any:
    """A JSON or YAML document as a checked tree (an object at the top, bounded depth and size)."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError("more than the %d bytes allowed for a document" % MAX_DOCUMENT_BYTES)
    try:
        if fmt == "yaml":
            doc = _load_yaml(data)
        else:
            doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DocumentError("not UTF-8 text (byte %d)" % exc.start) from None
    except RecursionError:
        raise DocumentError("nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise DocumentError("not valid %s: %s" % (fmt.upper(), str(exc).splitlines()[0][:200])) from None
    if not isinstance(doc, dict):
        raise DocumentError("the top level is %s, expected an object of descriptors"
                            % ("empty" if doc is None else type(doc).__name__))
    if fmt == "yaml":  # JSON's depth is bounded by the parser's recursion limit, its size by the bytes
        check_tree(doc)
    return doc


_YAML_LOADER = None  # type: Any


def _yaml_loader() -> Any:
    """A safe loader that reads numbers as Essentia writes them (C++ ``ostream``): YAML 1.1 takes
    ``1e-05`` (no dot), ``nan`` and ``inf`` for strings; Essentia and JSON mean numbers."""
    global _YAML_LOADER
    if _YAML_LOADER is None:
        import re

        import yaml

        base = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

        class EssentiaYamlLoader(base):  # type: ignore
            pass

        EssentiaYamlLoader.add_implicit_resolver(
            "tag:yaml.org,2002:float",
            re.compile(r"^(?:[-+]?[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+|[-+]?(?:nan|inf|NaN|Inf|infinity|Infinity))$"),
            list("-+0123456789nNiI"))
        _YAML_LOADER = EssentiaYamlLoader
    return _YAML_LOADER


def _load_yaml(data: bytes) -> Any:
    import yaml

    try:
        return yaml.load(data, Loader=_yaml_loader())
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).replace("\n", " ")) from None


def check_tree(doc: Any) -> None:
    """Bound depth and size (YAML aliases could make a small file a huge tree); keys must be strings."""
    try:
        check_tree_limits(doc, MAX_NODES, MAX_DEPTH, lambda key: isinstance(key, str))
    except TreeLimitExceeded as exc:
        if exc.kind == "nodes":
            raise DocumentError("more than %d values" % MAX_NODES) from None
        if exc.kind == "depth":
            raise DocumentError("nested deeper than %d levels" % MAX_DEPTH) from None
        raise DocumentError("key %r is not a string" % (exc.key,)) from None


__all__ = ["MAX_DOCUMENT_BYTES", "DocumentError", "Source", "expand_inputs", "iter_json_lines", "load_source",
           "read_file", "parse_document", "check_tree"]
