"""The features bundle: every low-level document of a job's snapshot in one compact download.

Shared by the job server (encodes) and the runner's training subprocess (decodes).
Standard library only, so Debian 11's Python decodes it. The layout, chosen by
measurement (docs/protocol.md, "Features bundle"), is columnar float32:

    header   b"ABFB" | u8 version (1) | u8 codec (1 = xz) | u16 0 | u64 payload length
    payload  (xz-compressed)
             u32 h | h bytes of JSON {"skeletons": [...], "records": [[mbid, artist, k], ...],
                                      "others": [[value, ...], ...], "columns": C}
             then an n × C matrix of little-endian float32, column-major (one column per
             float leaf path, e.g. lowlevel/mfcc/cov/3/4, numbered in order of first
             appearance over the skeletons), split into 4 byte planes.

A *skeleton* is a document with every float replaced by ``"f"`` and every other leaf
(int, string, bool, null, finite floats outside float32 range) by ``"o"``; the others'
values are kept exactly, per record, in ``others``. Floats become float32, which is what
Gaia stores, so nothing training uses is lost. A column holds one descriptor value across
all recordings (a recording without it has 0 there), so like values sit together, and
the byte planes let xz find the shared sign/exponent bytes.
"""
import json
import lzma
import struct
import sys
from array import array
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

MAGIC = b"ABFB"
VERSION = 1  # the complete form: documents
VERSION_COLUMNS = 2  # training columns (abrunnerd.trainer.bundle): what the job's preprocessing can use
KNOWN_VERSIONS = (VERSION, VERSION_COLUMNS)
CODEC_XZ = 1
_HEADER = struct.Struct("<4sBBHQ")
_HEADER_V2 = struct.Struct("<4sBBHIIQ")  # ... | u32 records | u32 float columns | u64 payload length
_FLT_MAX = 3.4028234663852886e38
_INF = float("inf")
DEFAULT_MAX_DECOMPRESSED = 4 * 1024 ** 3  # absolute ceiling, whatever a caller asks for
# What one recording may take in a decompressed payload: 65,536 float32 values (an AB
# document has ~2,600) plus 64 KiB of skeleton/other leaves; a bundle for n recordings
# may expand to at most n times this plus HEADER_ALLOWANCE (see decode_limit).
MAX_VALUES_PER_RECORDING = 65536
MAX_HEADER_BYTES_PER_RECORDING = 64 * 1024
HEADER_ALLOWANCE = 1024 * 1024
MEMORY_SHARE = 4  # the payload may take at most 1/4 of max_memory (the rest is for training)
_CHUNK = 64 * 1024
_FLOAT, _OTHER = "f", "o"

Record = Tuple[str, Dict[str, Any], Optional[str]]


class BundleError(ValueError):
    """A bundle that is corrupt, truncated, of an unknown version, or expands too far."""


def strip_document(doc: Dict[str, Any]) -> Dict[str, Any]:
    """Drop what AcousticBrainz dropped before training (and varies between documents).

    ``metadata.tags``, ``metadata.audio_properties.sample_rate`` and ``.lossless``;
    returns a new dict, the input is not modified.
    """
    out = dict(doc)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta = dict(meta)
        meta.pop("tags", None)
        props = meta.get("audio_properties")
        if isinstance(props, dict):
            props = dict(props)
            props.pop("sample_rate", None)
            props.pop("lossless", None)
            meta["audio_properties"] = props
        out["metadata"] = meta
    return out


def _split(node: Any, floats: List[float], others: List[Any], paths: List[tuple], path: tuple) -> Any:
    """The skeleton of ``node``; float leaves (and their paths) and other leaves go to the lists."""
    if isinstance(node, dict):
        return {key: _split(value, floats, others, paths, path + (key,)) for key, value in node.items()}
    if isinstance(node, list):
        return [_split(value, floats, others, paths, path + (i,)) for i, value in enumerate(node)]
    if isinstance(node, float) and not (_FLT_MAX < abs(node) < _INF):  # NaN and ±inf are float32 too
        floats.append(node)
        paths.append(path)
        return _FLOAT
    if node is None or isinstance(node, (bool, int, float, str)):
        others.append(node)
        return _OTHER
    raise TypeError("cannot encode a %s in a features bundle" % type(node).__name__)


def _float_paths(node: Any, path: tuple, out: List[tuple]) -> List[tuple]:
    """Paths of a skeleton's float leaves, in document order."""
    if isinstance(node, dict):
        for key, value in node.items():
            _float_paths(value, path + (key,), out)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _float_paths(value, path + (i,), out)
    elif node == _FLOAT:
        out.append(path)
    elif node != _OTHER:
        raise BundleError("features bundle skeleton has an unknown leaf %r" % (node,))
    return out


def _shuffle(block: bytes) -> bytes:
    return b"".join(block[i::4] for i in range(4))


def _unshuffle(block: bytes) -> bytes:
    n = len(block) // 4
    out = bytearray(len(block))
    for i in range(4):
        out[i::4] = block[i * n:(i + 1) * n]
    return bytes(out)


def encode_bundle(records: Iterable[Record]) -> bytes:
    """Encode ``(mbid, stripped_document, artist_or_None)`` records into a bundle."""
    skeletons: List[str] = []
    skeleton_index: Dict[str, int] = {}
    columns: Dict[tuple, int] = {}
    rows: List[Tuple[List[int], List[float]]] = []
    meta_records: List[list] = []
    all_others: List[list] = []
    for mbid, doc, artist in records:
        floats: List[float] = []
        others: List[Any] = []
        paths: List[tuple] = []
        skeleton = json.dumps(_split(doc, floats, others, paths, ()), separators=(",", ":"))
        k = skeleton_index.get(skeleton)
        if k is None:
            k = skeleton_index[skeleton] = len(skeletons)
            skeletons.append(skeleton)
        rows.append(([columns.setdefault(p, len(columns)) for p in paths], floats))
        meta_records.append([mbid, artist, k])
        all_others.append(others)
    header = json.dumps(
        {"skeletons": [json.loads(s) for s in skeletons], "records": meta_records, "others": all_others,
         "columns": len(columns)},
        separators=(",", ":"), allow_nan=False,
    ).encode("utf-8")
    n = len(rows)
    matrix = array("f", bytes(4 * n * len(columns)))  # column-major; absent cells stay 0
    for i, (cols, floats) in enumerate(rows):
        for c, value in zip(cols, floats):
            matrix[c * n + i] = value
    if sys.byteorder == "big":
        matrix.byteswap()
    payload = struct.pack("<I", len(header)) + header + _shuffle(matrix.tobytes())
    compressed = lzma.compress(payload, preset=6)
    return _HEADER.pack(MAGIC, VERSION, CODEC_XZ, 0, len(payload)) + compressed


def decode_limit(n_records: int, max_memory: Optional[int] = None) -> int:
    """Largest payload a bundle announced for ``n_records`` recordings may expand to.

    ``n_records`` comes from the job details (the dataset snapshot), ``max_memory`` from
    the runner's configuration (None: a quarter of the available RAM also bounds it).
    """
    per_record = 4 * MAX_VALUES_PER_RECORDING + MAX_HEADER_BYTES_PER_RECORDING
    limit = HEADER_ALLOWANCE + max(0, int(n_records)) * per_record
    memory = max_memory if max_memory else available_memory()
    if memory:
        limit = min(limit, max(HEADER_ALLOWANCE, int(memory) // MEMORY_SHARE))
    return min(limit, DEFAULT_MAX_DECOMPRESSED)


def available_memory() -> Optional[int]:
    """MemAvailable from /proc/meminfo in bytes, or None where there is no such file."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f.read(65536).decode("ascii", "replace").splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _inflate(stream: bytes, length: int) -> bytes:
    """Decompress chunk by chunk; never holds more than ``length + 1`` output bytes."""
    decompressor = lzma.LZMADecompressor()
    out = bytearray()
    pos = 0
    try:
        while not decompressor.eof:
            if decompressor.needs_input:
                if pos >= len(stream):
                    break
                chunk = stream[pos:pos + _CHUNK]
                pos += len(chunk)
            else:
                chunk = b""
            out += decompressor.decompress(chunk, max_length=length + 1 - len(out))
            if len(out) > length:
                raise BundleError("features bundle expands beyond the %d bytes its header declares "
                                  "(a decompression bomb or a corrupt bundle); refused" % length)
    except lzma.LZMAError as exc:
        raise BundleError("features bundle is corrupt: %s" % exc)
    if len(out) != length or not decompressor.eof:
        raise BundleError("features bundle is truncated or corrupt (payload %d bytes, header says %d)"
                          % (len(out), length))
    return bytes(out)


def _decompress(data: bytes, max_decompressed: int) -> bytes:
    if len(data) < _HEADER.size:
        raise BundleError("features bundle is truncated (%d bytes, no header)" % len(data))
    magic, version, codec, _reserved, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BundleError("not a features bundle (magic %r, expected %r)" % (magic, MAGIC))
    if version == VERSION_COLUMNS and codec == CODEC_XZ:
        raise BundleError("features bundle version 2 holds training columns, not documents "
                          "(read it with abrunnerd.trainer.bundle.dataset_from_bundle)")
    if version != VERSION or codec != CODEC_XZ:
        raise BundleError("unsupported features bundle version %d codec %d; upgrade abrunnerd"
                          % (version, codec))
    if length > min(max_decompressed, DEFAULT_MAX_DECOMPRESSED):
        raise BundleError("features bundle would expand to %d bytes, more than the limit of %d for this job "
                          "(its recordings x %d bytes each, at most 1/%d of max_memory); refused"
                          % (length, min(max_decompressed, DEFAULT_MAX_DECOMPRESSED),
                             4 * MAX_VALUES_PER_RECORDING + MAX_HEADER_BYTES_PER_RECORDING, MEMORY_SHARE))
    return _inflate(memoryview(data)[_HEADER.size:], length)


def _rebuild(skeleton: Any, floats: Iterator[float], others: Iterator[Any]) -> Any:
    if isinstance(skeleton, dict):
        return {key: _rebuild(value, floats, others) for key, value in skeleton.items()}
    if isinstance(skeleton, list):
        return [_rebuild(value, floats, others) for value in skeleton]
    if skeleton == _FLOAT:
        return next(floats)
    return next(others)


def decode_bundle(data: bytes, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
                  expected_records: Optional[int] = None) -> Iterator[Record]:
    """Yield ``(mbid, document, artist)`` from a bundle; ``BundleError`` on any corruption.

    Validates the whole structure before yielding the first record, so a consumer
    never acts on half a bundle.  ``max_decompressed`` caps the payload (a job passes
    ``decode_limit(recordings, max_memory)``); ``expected_records`` is the number of
    recordings the job details announce, which the bundle must hold exactly.
    """
    payload = _decompress(data, max_decompressed)
    try:
        (size,) = struct.unpack_from("<I", payload)
        header = json.loads(payload[4:4 + size].decode("utf-8"))
        skeletons, records, others = header["skeletons"], header["records"], header["others"]
        n_columns = header["columns"]
        if not (isinstance(skeletons, list) and isinstance(records, list) and isinstance(others, list)
                and len(others) == len(records) and isinstance(n_columns, int) and n_columns >= 0):
            raise BundleError("features bundle header is inconsistent")
        column_of: Dict[tuple, int] = {}
        layouts = []  # per skeleton: the column of each float leaf
        for skeleton in skeletons:
            layouts.append([column_of.setdefault(p, len(column_of)) for p in _float_paths(skeleton, (), [])])
        for i, rec in enumerate(records):
            mbid, artist, k = rec
            if (not isinstance(mbid, str) or not (artist is None or isinstance(artist, str))
                    or not isinstance(k, int) or not 0 <= k < len(skeletons)
                    or not isinstance(others[i], list)):
                raise BundleError("features bundle record %d is malformed" % i)
    except BundleError:
        raise
    except (struct.error, ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
        raise BundleError("features bundle header is corrupt: %s" % exc)
    n = len(records)
    if expected_records is not None and n != expected_records:
        raise BundleError("features bundle holds %d recordings, the job's dataset has %d" % (n, expected_records))
    block = payload[4 + size:]
    if len(column_of) > n_columns or len(block) != 4 * n * n_columns:
        raise BundleError("features bundle is truncated or corrupt: float block of %d bytes, expected %d"
                          % (len(block), 4 * n * n_columns))
    matrix = array("f")
    matrix.frombytes(_unshuffle(block))
    if sys.byteorder == "big":
        matrix.byteswap()
    return _records(skeletons, records, others, layouts, matrix, n)


def _records(skeletons, records, others, layouts, matrix, n) -> Iterator[Record]:
    """Records in the order they were encoded."""
    for i, (mbid, artist, k) in enumerate(records):
        values = iter([matrix[c * n + i] for c in layouts[k]])
        try:
            doc = _rebuild(skeletons[k], values, iter(others[i]))
        except StopIteration:
            raise BundleError("features bundle record %s has fewer values than its skeleton" % mbid)
        yield mbid, doc, artist


# --- version 2: a header of JSON metadata and one float32 matrix -----------------------------

def bundle_version(data: bytes) -> int:
    """The version byte of a bundle; ``BundleError`` if it is not one or one this abrunnerd cannot read."""
    if len(data) < _HEADER.size:
        raise BundleError("features bundle is truncated (%d bytes, no header)" % len(data))
    magic, version, codec = data[:4], data[4], data[5]
    if magic != MAGIC:
        raise BundleError("not a features bundle (magic %r, expected %r)" % (bytes(magic), MAGIC))
    if version not in KNOWN_VERSIONS or codec != CODEC_XZ:
        raise BundleError("unsupported features bundle version %d codec %d; upgrade abrunnerd" % (version, codec))
    return version


def encode_columns(meta: Dict[str, Any], matrix: Any) -> bytes:
    """Version 2: ``meta`` (JSON) and an ``(n, c)`` float32 matrix, column-major in 4 byte planes, under xz."""
    import numpy as np

    n, c = matrix.shape
    header = json.dumps(meta, separators=(",", ":"), allow_nan=False).encode("utf-8")
    columns = np.ascontiguousarray(np.asarray(matrix, dtype="<f4").T)
    planes = columns.view(np.uint8).reshape(-1, 4).T.tobytes()
    payload = struct.pack("<I", len(header)) + header + planes
    return _HEADER_V2.pack(MAGIC, VERSION_COLUMNS, CODEC_XZ, 0, n, c, len(payload)) + lzma.compress(payload, preset=6)


def decode_columns(data: bytes, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
                   expected_records: Optional[int] = None) -> Tuple[Dict[str, Any], Any]:
    """Version 2 -> (meta, float32 (n, c) matrix); bounded before and while decompressing.

    The outer header announces n and c; n must be ``expected_records``, c at most
    MAX_VALUES_PER_RECORDING, the payload exactly its header plus ``4 n c`` bytes and
    within ``max_decompressed``; decompression stops at that size.
    """
    import numpy as np

    if bundle_version(data) != VERSION_COLUMNS or len(data) < _HEADER_V2.size:
        raise BundleError("features bundle is not a version 2 bundle or is truncated")
    _magic, _version, _codec, _reserved, n, c, length = _HEADER_V2.unpack_from(data)
    if expected_records is not None and n != expected_records:
        raise BundleError("features bundle holds %d recordings, the job's dataset has %d" % (n, expected_records))
    if c > MAX_VALUES_PER_RECORDING:
        raise BundleError("features bundle announces %d values per recording, more than the limit of %d"
                          % (c, MAX_VALUES_PER_RECORDING))
    most = 4 + HEADER_ALLOWANCE + n * MAX_HEADER_BYTES_PER_RECORDING + 4 * n * c
    limit = min(max_decompressed, DEFAULT_MAX_DECOMPRESSED, most)
    if length > limit:
        raise BundleError("features bundle would expand to %d bytes, more than the limit of %d for this job "
                          "(%d recordings x %d values); refused" % (length, limit, n, c))
    payload = _inflate(memoryview(data)[_HEADER_V2.size:], length)
    (size,) = struct.unpack_from("<I", payload)
    if 4 + size + 4 * n * c != length:
        raise BundleError("features bundle is corrupt: header of %d bytes and %d x %d values do not make %d bytes"
                          % (size, n, c, length))
    try:
        meta = json.loads(payload[4:4 + size].decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise BundleError("features bundle header is corrupt: %s" % exc)
    if not isinstance(meta, dict):
        raise BundleError("features bundle header is not a JSON object")
    planes = np.frombuffer(payload, dtype=np.uint8, offset=4 + size).reshape(4, n * c)
    matrix = np.ascontiguousarray(planes.T).view("<f4").reshape(c, n).T.astype(np.float32)
    return meta, matrix
