"""Qt ``QDataStream`` primitives (big-endian, stream version Qt_4_4) as Gaia uses them.

Only what Gaia histories contain: integers, doubles, QString, QByteArray, QStringList
and the QVariant types of ``../shared/docs/gaia-history-format.md`` §2.  The reader
checks every length and count against the bytes that remain *before* allocating, so a
hostile file cannot make it allocate more than about its own size.

Python values on both sides: Bool -> ``bool``, Int -> ``int``, UInt -> :class:`UInt`,
Double -> ``float``, Float (135) -> :class:`Float32`, Map -> ``dict``, List ->
:class:`RealList` when every item is a Double else :class:`VariantList`, String ->
``str``, StringList -> :class:`StringList`, ByteArray -> ``bytes``.
"""
import struct
from typing import Any, Dict, List

from abrunnerd.gaia.chain import Float32Blob, RealList, StringList

# QVariant type ids (Qt 4 numbering, which Qt 5 also writes for Qt_4_4 streams).
BOOL, INT, UINT, DOUBLE, MAP, LIST, STRING, STRINGLIST, BYTEARRAY, FLOAT = (
    1, 2, 3, 6, 8, 9, 10, 11, 12, 135)
NULL_LENGTH = 0xFFFFFFFF
MAX_DEPTH = 32  # nested maps/lists; Gaia uses 3
# Container items (map entries, list and string-list items) one stream may hold. Bytes
# alone do not bound the cost: a map entry of 12 bytes becomes a ~100-byte dict slot
# and key, so a 64 MB file of tiny entries took ~7x its size and 25 s. Real histories
# hold ~14,000 items (ab-real-1's Gaia model: 13,657).
MAX_ITEMS = 1000000


class StreamError(ValueError):
    """The bytes are not a valid stream of the expected shape; the message says where."""


class UInt(int):
    """An unsigned 32-bit integer -> QVariant UInt (3)."""


class Float32(float):
    """A single-precision real -> QVariant Float (135); Gaia writes it only for PCA/RCA."""


class VariantList(list):
    """A QVariant List (9) whose items are not all Doubles (kept as written)."""


class Reader:
    """Sequential big-endian reader over ``data`` with bounds-checked lengths."""

    def __init__(self, data: bytes, what: str = "stream", max_items: int = MAX_ITEMS) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.what = what
        self.items_left = max_items

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def fail(self, message: str) -> "StreamError":
        return StreamError("%s at byte offset %d: %s" % (self.what, self.pos, message))

    def take(self, n: int, item: str) -> bytes:
        if n > self.remaining():
            raise self.fail("truncated: %s needs %d bytes, only %d left" % (item, n, self.remaining()))
        chunk = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return chunk

    def u8(self, item: str = "byte") -> int:
        return self.take(1, item)[0]

    def i32(self, item: str = "int32") -> int:
        return struct.unpack(">i", self.take(4, item))[0]

    def u32(self, item: str = "uint32") -> int:
        return struct.unpack(">I", self.take(4, item))[0]

    def f64(self, item: str = "double") -> float:
        return struct.unpack(">d", self.take(8, item))[0]

    def f32(self, item: str = "float") -> float:
        return struct.unpack(">f", self.take(4, item))[0]

    def count(self, item: str, min_item_size: int) -> int:
        """A container count, refused when even minimal items could not fit in what is left."""
        n = self.u32(item + " count")
        if n * min_item_size > self.remaining():
            raise self.fail("%s count %d cannot fit in the %d bytes left" % (item, n, self.remaining()))
        if n > self.items_left:
            raise self.fail("%s count %d exceeds what is left of the limit on container items (%d in "
                            "all; real histories hold about 14,000)" % (item, n, self.items_left))
        self.items_left -= n
        return n

    def qstring(self, item: str = "string") -> str:
        n = self.u32(item + " length")
        if n == NULL_LENGTH:
            return ""  # a null QString; Gaia only writes empty ones, read both as ""
        if n % 2:
            raise self.fail("%s length %d is odd (QString is UTF-16)" % (item, n))
        raw = self.take(n, item)
        try:
            return raw.decode("utf-16-be")
        except UnicodeDecodeError as exc:
            raise self.fail("%s is not valid UTF-16: %s" % (item, exc))

    def qbytearray(self, item: str = "byte array") -> bytes:
        n = self.u32(item + " length")
        if n == NULL_LENGTH:
            return b""
        return self.take(n, item)

    def qstringlist(self, item: str = "string list") -> StringList:
        return StringList(self.qstring(item) for _ in range(self.count(item, 4)))

    def qvariant(self, item: str = "value", depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail("%s nests deeper than %d levels" % (item, MAX_DEPTH))
        type_id = self.u32(item + " type")
        if self.u8(item + " null flag") not in (0, 1):
            raise self.fail("%s has an invalid null flag" % item)
        if type_id == BOOL:
            return bool(self.u8(item))
        if type_id == INT:
            return self.i32(item)
        if type_id == UINT:
            return UInt(self.u32(item))
        if type_id == DOUBLE:
            return self.f64(item)
        if type_id == FLOAT:
            return Float32(self.f32(item))
        if type_id == MAP:
            return self.qvariantmap(item, depth + 1)
        if type_id == LIST:
            values = [self.qvariant(item + " item", depth + 1) for _ in range(self.count(item, 5))]
            if all(type(v) is float for v in values):
                return RealList(values)
            return VariantList(values)
        if type_id == STRING:
            return self.qstring(item)
        if type_id == STRINGLIST:
            return self.qstringlist(item)
        if type_id == BYTEARRAY:
            return self.qbytearray(item)
        raise self.fail("%s has unsupported QVariant type %d" % (item, type_id))

    def qvariantmap(self, item: str = "map", depth: int = 0) -> Dict[str, Any]:
        result = {}  # type: Dict[str, Any]
        for _ in range(self.count(item, 9)):
            key = self.qstring(item + " key")
            if key in result:
                raise self.fail("%s has the key %r twice" % (item, key))
            result[key] = self.qvariant("%s[%r]" % (item, key), depth)
        return result

    def expect_end(self) -> None:
        if self.remaining():
            raise self.fail("%d unexpected bytes after the end" % self.remaining())


class Writer:
    """Accumulates big-endian QDataStream bytes; maps are written in Qt's descending key order."""

    def __init__(self) -> None:
        self.parts = []  # type: List[bytes]

    def getvalue(self) -> bytes:
        return b"".join(self.parts)

    def u8(self, v: int) -> None:
        self.parts.append(struct.pack(">B", v))

    def i32(self, v: int) -> None:
        self.parts.append(struct.pack(">i", v))

    def u32(self, v: int) -> None:
        self.parts.append(struct.pack(">I", v))

    def f64(self, v: float) -> None:
        self.parts.append(struct.pack(">d", v))

    def qstring(self, s: str) -> None:
        raw = s.encode("utf-16-be")
        self.u32(len(raw))
        self.parts.append(raw)

    def qbytearray(self, b: bytes) -> None:
        self.u32(len(b))
        self.parts.append(bytes(b))

    def qstringlist(self, items: List[str]) -> None:
        self.u32(len(items))
        for s in items:
            self.qstring(s)

    def qvariant(self, v: Any) -> None:
        if type(v).__module__ == "numpy" and getattr(v, "ndim", None) == 0:
            v = v.item()  # numpy scalars (float32 coefficients, int64 counts, bool_) -> Python values
        type_id = variant_type(v)
        self.u32(type_id)
        self.u8(0)
        if type_id == BOOL:
            self.u8(1 if v else 0)
        elif type_id == INT:
            self.i32(v)
        elif type_id == UINT:
            self.u32(v)
        elif type_id == DOUBLE:
            self.f64(v)
        elif type_id == FLOAT:
            self.parts.append(struct.pack(">f", v))
        elif type_id == MAP:
            self.qvariantmap(v)
        elif type_id == LIST:
            self.u32(len(v))
            for item in v:
                self.qvariant(float(item) if isinstance(v, RealList) else item)
        elif type_id == STRING:
            self.qstring(v)
        elif type_id == STRINGLIST:
            self.qstringlist(v)
        else:
            self.qbytearray(v)

    def qvariantmap(self, m: Dict[str, Any]) -> None:
        self.u32(len(m))
        for key in sorted(m, key=utf16_key, reverse=True):
            self.qstring(key)
            self.qvariant(m[key])


def utf16_key(s: str) -> bytes:
    """Qt's QString order (UTF-16 code units), which differs from ``str`` order above U+FFFF."""
    return s.encode("utf-16-be")


def variant_type(v: Any) -> int:
    """The QVariant type id a Python value is written as (see the module docstring)."""
    if isinstance(v, bool):
        return BOOL
    if isinstance(v, UInt):
        return UINT
    if isinstance(v, int):
        if not -2 ** 31 <= v < 2 ** 31:
            raise ValueError("integer %d does not fit a QVariant Int" % v)
        return INT
    if isinstance(v, Float32):
        return FLOAT
    if isinstance(v, float):
        return DOUBLE
    if isinstance(v, dict):
        return MAP
    if isinstance(v, StringList):
        return STRINGLIST
    if isinstance(v, (RealList, VariantList)):
        return LIST
    if isinstance(v, str):
        return STRING
    if isinstance(v, (bytes, bytearray, Float32Blob)):
        return BYTEARRAY
    if isinstance(v, list):
        if all(isinstance(x, str) for x in v) and v:
            return STRINGLIST
        return LIST
    raise ValueError("cannot store a %s in a Gaia parameter map" % type(v).__name__)
