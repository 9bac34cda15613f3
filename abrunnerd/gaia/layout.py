"""Gaia ``PointLayout`` streams <-> :class:`abrunnerd.gaia.chain.Layout` (history format §5-§6).

The writer emits the canonical form real Gaia writes (children sorted by short name,
segment indices re-derived per type and length type, maps in descending key order) so
a file read and written again is byte-identical.  The reader keeps only what Gaia keeps
on load -- names, types, length types, FL sizes and the enum maps -- and refuses what
Gaia refuses (a VL leaf whose segment size is not 1).
"""
from typing import Dict, List, Tuple

from abrunnerd.gaia.chain import ENUM, FIXED, REAL, STRING, VARIABLE, Descriptor, Layout
from abrunnerd.gaia.qdatastream import MAX_ITEMS, Reader, StreamError, Writer, utf16_key

UNDEFINED = 0
MAX_TREE_DEPTH = 64  # AB names have 4 levels


class _Node:
    def __init__(self) -> None:
        self.children = {}  # type: Dict[str, _Node]
        self.leaf = None  # type: Descriptor


def segments(layout: Layout) -> Dict[str, Tuple[int, int]]:
    """Gaia's index assignment: per type, leaves sorted by full name, FL and VL counters."""
    result = {}  # type: Dict[str, Tuple[int, int]]
    for dtype in (REAL, STRING, ENUM):
        fl = vl = 0
        for d in sorted((d for d in layout.descriptors if d.type == dtype), key=lambda d: utf16_key(d.name)):
            if d.length_type == FIXED:
                result[d.name] = (fl, fl + d.size)
                fl += d.size
            else:
                result[d.name] = (vl, vl + 1)
                vl += 1
    return result


def _tree(layout: Layout) -> _Node:
    root = _Node()
    for d in layout.descriptors:
        if not d.name.startswith(".") or d.name == "." or "" in d.name[1:].split("."):
            raise ValueError("descriptor name %r is not a Gaia full name (.a.b.c)" % d.name)
        if d.type not in (REAL, STRING, ENUM) or d.length_type not in (FIXED, VARIABLE):
            raise ValueError("descriptor %s has an invalid type or length type" % d.name)
        if d.length_type == VARIABLE and d.size != 1 or d.size < 0:
            raise ValueError("descriptor %s: a VL descriptor has size 1, FL size >= 0" % d.name)
        node = root
        for part in d.name[1:].split("."):
            if node.leaf is not None:
                raise ValueError("descriptor %s is nested under another descriptor" % d.name)
            node = node.children.setdefault(part, _Node())
        if node.leaf is not None or node.children:
            raise ValueError("descriptor %s is listed twice or has children" % d.name)
        node.leaf = d
    return root


def encode_layout(layout: Layout) -> bytes:
    """The PointLayout stream of ``layout`` (the content of a transformation's layout)."""
    segs = segments(layout)
    w = Writer()

    def node(name: str, n: _Node, is_root: bool) -> None:
        w.qstring(name)
        if is_root:
            segment = (UNDEFINED, VARIABLE, -1, -1)
        elif n.leaf is None:
            segment = (UNDEFINED, VARIABLE, 0, 1)
        else:
            segment = (n.leaf.type, n.leaf.length_type) + segs[n.leaf.name]
        for value in segment:
            w.i32(value)
        w.u32(len(n.children))
        for child in sorted(n.children, key=utf16_key):
            node(child, n.children[child], False)

    node("", _tree(layout), True)
    names = sorted(layout.enum_maps, key=utf16_key, reverse=True)
    w.u32(len(names))
    for name in names:
        w.qstring(name)
        values = layout.enum_maps[name]
        w.u32(len(values))
        for code in reversed(range(len(values))):
            w.i32(code)
            w.qstring(values[code])
    w.u32(len(names))
    for name in names:
        w.qstring(name)
        values = layout.enum_maps[name]
        if len(set(values)) != len(values):
            raise ValueError("enum map of %s lists a string twice" % name)
        w.u32(len(values))
        for code, value in sorted(enumerate(values), key=lambda cv: utf16_key(cv[1]), reverse=True):
            w.qstring(value)
            w.i32(code)
    return w.getvalue()


def decode_layout(data: bytes, what: str = "layout", max_items: int = MAX_ITEMS) -> Layout:
    """Parse a PointLayout stream; :class:`StreamError` names the offending node or map.

    At most ``max_items`` container items (tree nodes, map entries) are read."""
    return decode_layout_counted(data, what, max_items)[0]


def decode_layout_counted(data: bytes, what: str, max_items: int) -> Tuple[Layout, int]:
    """``decode_layout`` and the container items it read (for a caller's shared budget)."""
    r = Reader(data, what, max_items)
    descriptors = []  # type: List[Descriptor]

    def node(path: str, depth: int, is_root: bool) -> str:
        if depth > MAX_TREE_DEPTH:
            raise r.fail("descriptor tree deeper than %d levels" % MAX_TREE_DEPTH)
        name = r.qstring("node name")
        full = path + "." + name if not is_root else ""
        dtype, ltype, begin, end = r.i32("type"), r.i32("length type"), r.i32("begin"), r.i32("end")
        n_children = r.count("children of %r" % (full or "root"), 20)
        if is_root and name:
            raise r.fail("the root node has the name %r (should be empty)" % name)
        if not is_root and (not name or "." in name):
            raise r.fail("invalid node name %r under %r" % (name, path or "root"))
        if ltype not in (FIXED, VARIABLE):
            raise r.fail("node %r has invalid length type %d" % (full, ltype))
        if n_children or is_root:
            if dtype != UNDEFINED:
                raise r.fail("inner node %r has a descriptor type %d" % (full or "root", dtype))
            seen = set()
            for _ in range(n_children):
                child = node(full, depth + 1, False)
                if child in seen:
                    raise r.fail("node %r has two children named %r" % (full or "root", child))
                seen.add(child)
            return name
        if dtype not in (REAL, STRING, ENUM):
            raise r.fail("leaf %r has invalid type %d" % (full, dtype))
        size = end - begin
        if ltype == VARIABLE and size != 1:
            raise r.fail("leaf %r has a VL segment of size %d (should be 1)" % (full, size))
        if size < 0:
            raise r.fail("leaf %r has a negative segment size %d" % (full, size))
        descriptors.append(Descriptor(full, dtype, ltype, size if ltype == FIXED else 1))
        return name

    node("", 0, True)
    enum2str = {}  # type: Dict[str, Dict[int, str]]
    for _ in range(r.count("enum2str", 8)):
        key = r.qstring("enum2str key")
        inner = {}  # type: Dict[int, str]
        for _ in range(r.count("enum2str[%r]" % key, 8)):
            code = r.i32("enum code")
            inner[code] = r.qstring("enum string")
        enum2str[key] = inner
    str2enum = {}  # type: Dict[str, Dict[str, int]]
    for _ in range(r.count("str2enum", 8)):
        key = r.qstring("str2enum key")
        inner2 = {}  # type: Dict[str, int]
        for _ in range(r.count("str2enum[%r]" % key, 8)):
            value = r.qstring("enum string")
            inner2[value] = r.i32("enum code")
        str2enum[key] = inner2
    r.expect_end()
    enum_maps = {}  # type: Dict[str, List[str]]
    for key, inner in enum2str.items():
        if sorted(inner) != list(range(len(inner))):
            raise StreamError("%s: enum codes of %s are not 0..%d" % (what, key, len(inner) - 1))
        values = [inner[i] for i in range(len(inner))]
        if str2enum.get(key) != {v: i for i, v in enumerate(values)} or len(set(values)) != len(values):
            raise StreamError("%s: the two enum maps of %s disagree" % (what, key))
        enum_maps[key] = values
    if set(str2enum) != set(enum2str):
        raise StreamError("%s: enum2str and str2enum name different descriptors" % what)
    layout = Layout(descriptors=sorted(descriptors, key=lambda d: utf16_key(d.name)), enum_maps=enum_maps)
    return layout, max_items - r.items_left
