"""Read and write Gaia ``.history`` files (TransfoChain, format 102) without Gaia.

The writer reproduces Gaia's own encoding (descending QMap keys, canonical layout
trees), so reading Gaia's file and writing it again gives the same bytes; that is how
the tests prove every part is encoded as Gaia does.  The reader is meant for untrusted
files: it checks every length against the bytes left before allocating and raises
:class:`HistoryError` naming the transformation and field that is wrong.
Byte-level format: ``../shared/docs/gaia-history-format.md``; summary in ``docs/history.md``.
"""
import os
from typing import Any, Dict, List, Union

from abrunnerd.atomic import write_bytes
from abrunnerd.gaia.chain import Float32Blob, Layout, Step, SvmModel
from abrunnerd.gaia.layout import decode_layout_counted, encode_layout
from abrunnerd.gaia.libsvm_text import render_model
from abrunnerd.gaia.qdatastream import BYTEARRAY, MAP, MAX_ITEMS, Reader, StreamError, Writer

MAGIC = b"\x6a\xea\x72\x3d"
FORMAT_VERSION = 102  # "Gaia 2.3 format": stream version Qt_4_4, 7-field transformations
DATASET_MAGIC = b"\x6a\xea\x72\x30"  # a whole Gaia DataSet, not a history
MAX_FILE_SIZE = 1 << 30
# Smallest possible transformation: 3 empty strings, 3 empty maps, an empty byte array.
MIN_TRANSFORMATION_SIZE = 3 * 4 + 3 * 9 + 9


class HistoryError(ValueError):
    """Not a valid Gaia history; the message says which part and why."""


def dumps_history(steps: List[Step]) -> bytes:
    """The bytes of a Gaia ``.history`` for ``steps`` (at least one: Essentia aborts on none)."""
    if not steps:
        raise ValueError("refusing to write an empty Gaia history (Essentia's GaiaTransform aborts on it)")
    w = Writer()
    w.parts.append(MAGIC)
    w.i32(FORMAT_VERSION)
    w.u32(len(steps))
    for index, step in enumerate(steps):
        try:
            w.qstring(step.name)
            w.qstring(step.analyzer)
            w.qstring(step.applier)
            w.qvariant(dict(step.analyzer_params))
            w.qvariant(_params_for_file(step.params))
            w.qvariant(dict(step.info))
            w.qvariant(encode_layout(step.input_layout))
        except (ValueError, TypeError) as exc:
            raise ValueError("transformation %d (%s): %s" % (index, step.analyzer, exc)) from None
    return w.getvalue()


def _params_for_file(params: Dict[str, Any]) -> Dict[str, Any]:
    result = dict(params)
    model = result.get("modelData")
    if isinstance(model, SvmModel):
        result["modelData"] = render_model(model)
    if isinstance(result.get("modelData"), (bytes, bytearray)) and b"\0" in result["modelData"]:
        raise ValueError("modelData contains a NUL byte (Gaia passes it to libsvm as a C string)")
    return result


def write_history(steps: List[Step], path: Union[str, "os.PathLike[str]"]) -> None:
    """Write atomically: readers see the old file or the complete new one, never a part."""
    write_bytes(os.fspath(path), dumps_history(steps), mode=0o644)


def loads_history(data: bytes, max_items: int = MAX_ITEMS) -> List[Step]:
    """Parse a history; :class:`HistoryError` on anything Gaia would refuse or cannot be parsed.

    ``max_items`` caps the container items (map entries, list items) of the whole file, so
    memory and time stay proportional to a bound, not only to the byte size."""
    if len(data) > MAX_FILE_SIZE:
        raise HistoryError("history is %d bytes, more than the %d allowed" % (len(data), MAX_FILE_SIZE))
    if data[:4] != MAGIC:
        hint = " (it is a Gaia DataSet, not a history)" if data[:4] == DATASET_MAGIC else ""
        raise HistoryError("not a Gaia history: the file starts with %s, expected 6a ea 72 3d%s"
                           % (" ".join("%02x" % b for b in data[:4]) if data else "nothing", hint))
    r = Reader(data, "history", max_items)
    r.pos = 4
    try:
        version = r.i32("format version")
        if version != FORMAT_VERSION:
            raise HistoryError("unsupported Gaia history format version %d (only %d, Gaia >= 2.3, is "
                               "supported)" % (version, FORMAT_VERSION))
        n = r.count("transformation", MIN_TRANSFORMATION_SIZE)
        if n == 0:
            raise HistoryError("the history has no transformations (Essentia's GaiaTransform aborts on it)")
        steps = [_read_step(r, i) for i in range(n)]
        r.expect_end()
    except StreamError as exc:
        raise HistoryError("malformed Gaia history: %s" % exc) from None
    return steps


def _read_step(r: Reader, index: int) -> Step:
    where = "transformation %d" % index
    name = r.qstring(where + " name")
    analyzer = r.qstring(where + " analyzer name")
    applier = r.qstring(where + " applier name")
    where = "transformation %d (%s)" % (index, analyzer or "?")
    maps = []
    for field in ("analyzer params", "params", "info"):
        value = _typed(r, where + " " + field, MAP)
        maps.append(value)
    layout_bytes = _typed(r, where + " layout", BYTEARRAY)
    layout, used = decode_layout_counted(layout_bytes, "%s layout" % where, r.items_left)
    r.items_left -= used  # one budget for the whole file, layouts included
    params = maps[1]
    model = params.get("modelData")
    if isinstance(model, bytes) and b"\0" in model:
        # Gaia hands modelData to libsvm as a C string: it would load a truncated model.
        raise StreamError("%s: modelData contains a NUL byte at offset %d, so libsvm would read a "
                          "truncated model" % (where, model.index(b"\0")))
    dist = params.get("distribution")
    if isinstance(dist, dict):
        for key, blob in dist.items():
            if not isinstance(blob, bytes) or len(blob) % 4:
                raise StreamError("%s: distribution %r is not an array of float32" % (where, key))
            dist[key] = Float32Blob(blob)
    return Step(analyzer=analyzer, applier=applier, analyzer_params=maps[0], params=params,
                info=maps[2], input_layout=layout, name=name)


def _typed(r: Reader, item: str, type_id: int) -> Any:
    start = r.pos
    actual = r.u32(item + " type")
    if actual != type_id:
        r.pos = start
        raise r.fail("%s has QVariant type %d, expected %d" % (item, actual, type_id))
    r.pos = start
    return r.qvariant(item)


def read_history(path: Union[str, "os.PathLike[str]"]) -> List[Step]:
    """Read and parse a history file; errors name the file."""
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_SIZE:
            raise HistoryError("%s: %d bytes, more than the %d allowed" % (path, size, MAX_FILE_SIZE))
        with open(path, "rb") as f:
            data = f.read()
        return loads_history(data)
    except HistoryError as exc:
        raise HistoryError("%s: %s" % (path, exc)) from None


__all__ = ["MAGIC", "HistoryError", "dumps_history", "write_history", "loads_history", "read_history"]
