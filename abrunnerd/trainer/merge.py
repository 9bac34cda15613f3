"""Building the base dataset from documents (Gaia's mergeAll, pipeline spec §4).

Deterministic version of Gaia's merge: points in MBID order; descriptors kept are the
ones every document has with the same type (the rest are counted as dropped instead of
dropping whole documents); then removevl, fixlength and the cleaner, recorded as Gaia
records them: one ``remove`` (on the raw, all-VL layout) and one ``fixlength``.
"""
from typing import Any, Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from abrunnerd.gaia.chain import REAL, VARIABLE, Descriptor, Layout, Step, StringList
from abrunnerd.trainer.errors import DatasetError
from abrunnerd.trainer.flatten import flatten_leaves, signature
from abrunnerd.trainer.frame import Frame, real_constant
from abrunnerd.trainer.patterns import PatternError, resolve


class Merged(NamedTuple):
    frame: Frame
    steps: List[Step]  # remove + fixlength (each omitted when empty)
    raw_layout: Layout  # the first layout of every history: common descriptors, all VL
    dropped: Dict[str, List[str]]  # descriptor present in only some documents -> recordings lacking it
    removed: List[str]  # removed by removevl / cleaner / the project's excludedDescriptors
    variable_length: List[str]  # removevl (length differs between documents)
    constant: List[str]  # cleaner (constant in every document)
    excluded: List[str]  # matched by excludedDescriptors


def common_layout(flats: Dict[str, Dict[str, Tuple[int, Any]]], ids: Sequence[str]
                  ) -> Tuple[Dict[str, int], Dict[str, set], Dict[str, List[str]]]:
    """Types of descriptors every document has with one type; their lengths; and what was dropped."""
    distinct: Dict[tuple, List[str]] = {}
    for mbid in ids:
        distinct.setdefault(signature(flats[mbid]), []).append(mbid)
    types: Dict[str, set] = {}
    lengths: Dict[str, set] = {}
    holders: Dict[str, int] = {}
    for sig, members in distinct.items():
        for name, kind, length in sig:
            types.setdefault(name, set()).add(kind)
            lengths.setdefault(name, set()).add(length)
            holders[name] = holders.get(name, 0) + len(members)
    common = {n: next(iter(t)) for n, t in types.items() if len(t) == 1 and holders[n] == len(ids)}
    dropped: Dict[str, List[str]] = {}
    for name in sorted(set(types) - set(common)):
        lacking = []
        for sig, members in distinct.items():
            if not any(n == name for (n, _, _) in sig):
                lacking.extend(members)
        dropped[name] = sorted(lacking)  # empty: present everywhere but with different types
    return common, lengths, dropped


def merge_documents(documents: Dict[str, dict], exclude: Sequence[str] = (), fail_on_unmatched: bool = False,
                    release: bool = False) -> Merged:
    """Flatten (and validate) every document once, in MBID order, then build the columns from that.

    ``exclude``: Gaia's ``excludedDescriptors`` patterns, removed with the merge's own removals.
    ``release``: remove each document from ``documents`` once flattened (memory).
    """
    ids = sorted(documents)
    if not ids:
        raise DatasetError("the dataset has no recordings")
    flats = {}
    for mbid in ids:
        flats[mbid] = flatten_leaves(documents.pop(mbid) if release else documents[mbid], mbid)
    types, lengths, dropped = common_layout(flats, ids)
    if not types:
        raise DatasetError("the low-level documents have no descriptor in common")
    try:
        excluded = resolve(exclude, sorted(types), fail_on_unmatched=fail_on_unmatched) if exclude else []
    except PatternError as e:
        raise DatasetError("excludedDescriptors: %s (failOnUnmatched is true)" % e) from None
    # removevl: length differs between points or is empty in the first point
    variable = sorted(n for n in types if n not in excluded and (len(lengths[n]) > 1 or 0 in lengths[n]))
    fixed = {n: next(iter(lengths[n])) for n in types if n not in set(variable) and n not in excluded}
    values: Dict[str, np.ndarray] = {}
    for n in sorted(fixed):
        column = [flats[mbid][n][1] for mbid in ids]
        if types[n] == REAL:
            values[n] = np.array(column, dtype=np.float32)
        else:
            values[n] = np.empty((len(ids), fixed[n]), dtype=object)
            values[n][:, :] = column
    del flats
    constant = sorted(n for n in fixed if types[n] == REAL and bool(np.all(real_constant(values[n]))))
    for n in constant:
        del values[n]
    return assemble(Frame(ids, values, {n: types[n] for n in values}), types, dropped, variable, constant, excluded)


def assemble(frame: Frame, raw_types: Dict[str, int], dropped: Dict[str, List[str]], variable: Sequence[str],
             constant: Sequence[str], excluded: Sequence[str]) -> Merged:
    """The merge's result from its decisions (also how a reduced features bundle is turned into one)."""
    raw_layout = Layout([Descriptor(n, t, VARIABLE, 1) for n, t in sorted(raw_types.items())])
    removed = sorted(set(variable) | set(constant) | set(excluded))
    steps = []
    if removed:
        steps.append(Step("remove", "removedesc", {"descriptorNames": StringList(removed)},
                          {"descriptorNames": StringList(removed)}, {}, raw_layout))
    kept = frame.names()
    vl_layout = Layout([Descriptor(n, raw_types[n], VARIABLE, 1) for n in kept])
    steps.append(Step("fixlength", "fixlengthapplier", {"descriptorNames": StringList(kept)},
                      {"descriptorNames": StringList(kept)}, {}, vl_layout))
    return Merged(frame, steps, raw_layout, dropped, removed, sorted(variable), sorted(constant), sorted(excluded))
