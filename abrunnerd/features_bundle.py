"""The features bundle: every low-level document of a job's snapshot in one compact download.

Shared by the job server (encodes) and the runner's training subprocess (decodes).
Standard library only, so Debian 11's Python decodes it. The layout, chosen by
measurement (docs/protocol.md, "Features bundle"), is columnar float32:

    header   b"ABFB" | u8 version (1) | u8 codec (1 = xz) | u16 0 | u64 payload length
    payload  (xz-compressed)
             u32 n | n bytes of JSON {"skeletons": [...], "records": [[mbid, artist, k], ...],
                                      "others": [[value, ...], ...]}
             then per skeleton k: its records' float leaves as little-endian float32,
             descriptor-major (one column per leaf) and split into 4 byte planes.

A *skeleton* is a document with every float replaced by ``"f"`` and every other leaf
(int, string, bool, null, floats outside float32 range) by ``"o"``; the others' values
are kept exactly, per record, in ``others``. Floats become float32, which is what Gaia
stores, so nothing training uses is lost; documents of one extractor share one skeleton,
and byte planes of like columns compress several times better than JSON text.
"""
import json
import lzma
import struct
import sys
from array import array
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

MAGIC = b"ABFB"
VERSION = 1
CODEC_XZ = 1
_HEADER = struct.Struct("<4sBBHQ")
_FLT_MAX = 3.4028234663852886e38
_INF = float("inf")
DEFAULT_MAX_DECOMPRESSED = 4 * 1024 ** 3
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


def _split(node: Any, floats: List[float], others: List[Any]) -> Any:
    """The skeleton of ``node``; its float leaves go to ``floats``, other leaves to ``others``."""
    if isinstance(node, dict):
        return {key: _split(value, floats, others) for key, value in node.items()}
    if isinstance(node, list):
        return [_split(value, floats, others) for value in node]
    if isinstance(node, float) and not (_FLT_MAX < abs(node) < _INF):  # NaN and ±inf are float32 too
        floats.append(node)
        return _FLOAT
    if node is None or isinstance(node, (bool, int, float, str)):
        others.append(node)
        return _OTHER
    raise TypeError("cannot encode a %s in a features bundle" % type(node).__name__)


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
    rows: List[List[array]] = []
    meta_records: List[list] = []
    all_others: List[list] = []
    for mbid, doc, artist in records:
        floats: List[float] = []
        others: List[Any] = []
        skeleton = json.dumps(_split(doc, floats, others), separators=(",", ":"))
        k = skeleton_index.get(skeleton)
        if k is None:
            k = skeleton_index[skeleton] = len(skeletons)
            skeletons.append(skeleton)
            rows.append([])
        rows[k].append(array("f", floats))
        meta_records.append([mbid, artist, k])
        all_others.append(others)
    header = json.dumps(
        {"skeletons": [json.loads(s) for s in skeletons], "records": meta_records,
         "others": all_others},
        separators=(",", ":"), allow_nan=False,
    ).encode("utf-8")
    parts = [struct.pack("<I", len(header)), header]
    for group in rows:
        n = len(group)
        columns = array("f", bytes(4 * n * len(group[0])))
        for i, row in enumerate(group):
            columns[i::n] = row
        if sys.byteorder == "big":
            columns.byteswap()
        parts.append(_shuffle(columns.tobytes()))
    payload = b"".join(parts)
    compressed = lzma.compress(payload, preset=6)
    return _HEADER.pack(MAGIC, VERSION, CODEC_XZ, 0, len(payload)) + compressed


def _decompress(data: bytes, max_decompressed: int) -> bytes:
    if len(data) < _HEADER.size:
        raise BundleError("features bundle is truncated (%d bytes, no header)" % len(data))
    magic, version, codec, _reserved, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BundleError("not a features bundle (magic %r, expected %r)" % (magic, MAGIC))
    if version != VERSION or codec != CODEC_XZ:
        raise BundleError("unsupported features bundle version %d codec %d; upgrade abrunnerd"
                          % (version, codec))
    if length > max_decompressed:
        raise BundleError("features bundle would expand to %d bytes, more than the limit of %d"
                          % (length, max_decompressed))
    decompressor = lzma.LZMADecompressor()
    try:
        payload = decompressor.decompress(data[_HEADER.size:], max_length=length + 1)
    except lzma.LZMAError as exc:
        raise BundleError("features bundle is corrupt: %s" % exc)
    if len(payload) != length or not decompressor.eof:
        raise BundleError("features bundle is truncated or corrupt (payload %d bytes, header says %d)"
                          % (len(payload), length))
    return payload


def _rebuild(skeleton: Any, floats: Iterator[float], others: Iterator[Any]) -> Any:
    if isinstance(skeleton, dict):
        return {key: _rebuild(value, floats, others) for key, value in skeleton.items()}
    if isinstance(skeleton, list):
        return [_rebuild(value, floats, others) for value in skeleton]
    if skeleton == _FLOAT:
        return next(floats)
    if skeleton == _OTHER:
        return next(others)
    raise BundleError("features bundle skeleton has an unknown leaf %r" % (skeleton,))


def _count_floats(skeleton: Any) -> int:
    if isinstance(skeleton, dict):
        return sum(_count_floats(v) for v in skeleton.values())
    if isinstance(skeleton, list):
        return sum(_count_floats(v) for v in skeleton)
    return 1 if skeleton == _FLOAT else 0


def decode_bundle(data: bytes, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED) -> Iterator[Record]:
    """Yield ``(mbid, document, artist)`` from a bundle; ``BundleError`` on any corruption.

    Validates the whole structure before yielding the first record, so a consumer
    never acts on half a bundle.
    """
    payload = _decompress(data, max_decompressed)
    try:
        (n,) = struct.unpack_from("<I", payload)
        header = json.loads(payload[4:4 + n].decode("utf-8"))
        skeletons = header["skeletons"]
        records = header["records"]
        others = header["others"]
        if not (isinstance(skeletons, list) and isinstance(records, list)
                and isinstance(others, list) and len(others) == len(records)):
            raise BundleError("features bundle header is inconsistent")
        members: List[List[int]] = [[] for _ in skeletons]
        for i, rec in enumerate(records):
            mbid, artist, k = rec
            if not isinstance(mbid, str) or not (artist is None or isinstance(artist, str)):
                raise BundleError("features bundle record %d is malformed" % i)
            members[k].append(i)
    except BundleError:
        raise
    except (struct.error, ValueError, KeyError, TypeError, IndexError) as exc:
        raise BundleError("features bundle header is corrupt: %s" % exc)
    offset = 4 + n
    blocks: List[Tuple[int, array]] = []
    for k, skeleton in enumerate(skeletons):
        width = _count_floats(skeleton)
        size = 4 * width * len(members[k])
        block = payload[offset:offset + size]
        if len(block) != size:
            raise BundleError("features bundle is truncated in the float block of skeleton %d" % k)
        offset += size
        columns = array("f")
        columns.frombytes(_unshuffle(block))
        if sys.byteorder == "big":
            columns.byteswap()
        blocks.append((width, columns))
    if offset != len(payload):
        raise BundleError("features bundle has %d unexpected trailing bytes" % (len(payload) - offset))
    return _records(skeletons, records, others, members, blocks)


def _records(skeletons, records, others, members, blocks) -> Iterator[Record]:
    """Records in the order they were encoded."""
    position = {}
    for k, indices in enumerate(members):
        for row, i in enumerate(indices):
            position[i] = row
    for i, (mbid, artist, k) in enumerate(records):
        width, columns = blocks[k]
        n = len(members[k])
        values = iter(columns[position[i]::n]) if width else iter(())
        try:
            doc = _rebuild(skeletons[k], values, iter(others[i]))
        except StopIteration:
            raise BundleError("features bundle record %s has fewer values than its skeleton" % mbid)
        yield mbid, doc, artist
