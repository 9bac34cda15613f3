"""Building the base dataset from documents (Gaia's mergeAll, pipeline spec §4).

Deterministic version of Gaia's merge: points in MBID order; descriptors kept are the
ones every document has with the same type (the rest are counted as dropped instead of
dropping whole documents); then removevl, fixlength and the cleaner, recorded as Gaia
records them: one ``remove`` (on the raw, all-VL layout) and one ``fixlength``.
"""
from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from abrunnerd.gaia.chain import REAL, VARIABLE, Descriptor, Layout, Step, StringList
from abrunnerd.trainer.errors import DatasetError
from abrunnerd.trainer.flatten import iter_leaves, leaf_value, signature
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


def common_layout(documents: Dict[str, dict], ids: Sequence[str]) -> Tuple[Dict[str, int], Dict[str, set],
                                                                            Dict[str, List[str]]]:
    """Types of descriptors every document has with one type; their lengths; and what was dropped."""
    distinct: Dict[tuple, List[str]] = {}
    for mbid in ids:
        distinct.setdefault(signature(documents[mbid], mbid), []).append(mbid)
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


def merge_documents(documents: Dict[str, dict], exclude: Sequence[str] = (), fail_on_unmatched: bool = False) -> Merged:
    """``exclude``: Gaia's ``excludedDescriptors`` patterns, removed with the merge's own removals."""
    ids = sorted(documents)
    if not ids:
        raise DatasetError("the dataset has no recordings")
    types, lengths, dropped = common_layout(documents, ids)
    if not types:
        raise DatasetError("the low-level documents have no descriptor in common")
    raw_layout = Layout([Descriptor(n, t, VARIABLE, 1) for n, t in sorted(types.items())])
    try:
        excluded = resolve(exclude, sorted(types), fail_on_unmatched=fail_on_unmatched) if exclude else []
    except PatternError as e:
        raise DatasetError("excludedDescriptors: %s (failOnUnmatched is true)" % e) from None
    # removevl: length differs between points or is empty in the first point
    variable = sorted(n for n in types if n not in excluded and (len(lengths[n]) > 1 or 0 in lengths[n]))
    fixed = {n: next(iter(lengths[n])) for n in types if n not in set(variable) and n not in excluded}
    values: Dict[str, np.ndarray] = {}
    for n, size in fixed.items():
        values[n] = np.empty((len(ids), size), dtype=np.float32 if types[n] == REAL else object)
    for row, mbid in enumerate(ids):
        for name, value in iter_leaves(documents[mbid]):
            if name in fixed:
                values[name][row, :] = leaf_value(value, mbid, name)[1]
    constant = sorted(n for n in fixed if types[n] == REAL and bool(np.all(real_constant(values[n]))))
    for n in constant:
        del values[n]
    removed = sorted(set(variable) | set(constant) | set(excluded))
    frame = Frame(ids, values, {n: types[n] for n in values})
    steps = []
    if removed:
        steps.append(Step("remove", "removedesc", {"descriptorNames": StringList(removed)},
                          {"descriptorNames": StringList(removed)}, {}, raw_layout))
    kept = sorted(values)
    vl_layout = Layout([Descriptor(n, types[n], VARIABLE, 1) for n in kept])
    steps.append(Step("fixlength", "fixlengthapplier", {"descriptorNames": StringList(kept)},
                      {"descriptorNames": StringList(kept)}, {}, vl_layout))
    return Merged(frame, steps, raw_layout, dropped, removed, variable, constant, sorted(excluded))
