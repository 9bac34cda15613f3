"""Features bundle version 2: the merged dataset, cut to what the job's preprocessing sets can use.

Every preprocessing set starts by removing the template's unused descriptors
(``metadata.*``, ``*dmean*``, ``*.min``, ...), so their values never reach a model.
The history still records them (the merge's raw layout, ``remove`` and ``fixlength``
steps, and the first ``remove``'s input layout), so the bundle keeps their names, types
and sizes and the merge's decisions, and sends values only for the rest:

    meta = {"form": "reduced", "template": T,
            "records": [[mbid, artist|null], ...]          # sorted by MBID: the merge's row order
            "raw": [[name, type], ...]                      # the merge's raw layout
            "variable": [name, ...], "constant": [name, ...]  # removevl, cleaner: the merge's "remove"
            "dropped": {name: [mbid, ...]},                 # descriptors not in every document
            "kept": [[name, type, size, used], ...],        # the merged frame's descriptors
            "strings": {name: [[str, ...] per record]}}      # used String descriptors
    matrix = n x (sizes of the used Real descriptors, in "kept" order), float32

Decoding gives the merge's result directly (``Merged``), without documents: one
vectorised pass, no per-value Python.  The server sends this form only when it gives
the same training as the documents (``reduced_form_allowed``): every set of the job
starts with the unused-descriptor removal, classes are not normalised (that merges a
subset), and every document passes the trainer's validation; otherwise it sends the
complete form (version 1, the documents).
"""
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np

from abrunnerd import features_bundle as fb
from abrunnerd.gaia.chain import REAL, STRING
from abrunnerd.trainer.dataset import Dataset
from abrunnerd.trainer.errors import DatasetError, OptionsError
from abrunnerd.trainer.flatten import F32_MAX
from abrunnerd.trainer.frame import Frame
from abrunnerd.trainer.merge import Merged, assemble, merge_documents
from abrunnerd.trainer.options import TrainOptions
from abrunnerd.trainer.patterns import PatternError, resolve
from abrunnerd.trainer.templates import TEMPLATES, choose_template, preprocessing_steps

Record = Tuple[str, Dict[str, Any], Optional[str]]


def reduced_form_allowed(opts: TrainOptions, template: str) -> bool:
    """True when every preprocessing set of the job begins by removing the template's unused descriptors."""
    if opts.normalize or opts.excluded or (opts.template is not None and opts.template != template):
        return False
    unused = TEMPLATES[template][0]
    for name in opts.preprocessing_values:
        steps = preprocessing_steps(name, template)
        if not steps or steps[0] != ("remove", {"patterns": unused}):
            return False
    return True


def encode_for_job(records: Iterable[Record], options: Optional[Dict[str, Any]]) -> bytes:
    """The bundle a job should download: version 2 when the job allows it, else the complete version 1."""
    records = list(records)
    try:
        opts = TrainOptions.from_job_options(options)
        merged = merge_documents({m: d for m, d, _a in records})
        template = choose_template([d.name for d in merged.raw_layout.descriptors])
        if not reduced_form_allowed(opts, template):
            return fb.encode_bundle(records)
        unused = set(resolve(TEMPLATES[template][0], merged.frame.names()))
    except (DatasetError, OptionsError, PatternError):
        return fb.encode_bundle(records)  # the trainer reports the problem from the documents
    artists = {m: a for m, _d, a in records}
    return encode_merged(merged, template, unused, artists)


def encode_merged(merged: Merged, template: str, unused: set, artists: Dict[str, Optional[str]]) -> bytes:
    frame = merged.frame
    kept, columns, strings = [], [], {}
    for name in frame.names():
        kind = frame.types[name]
        size = int(frame.values[name].shape[1])
        used = name not in unused
        kept.append([name, kind, size, used])
        if used and kind == REAL:
            columns.append(frame.values[name])
        elif used:
            strings[name] = frame.values[name].tolist()
    n = len(frame.ids)
    matrix = np.concatenate(columns, axis=1) if columns else np.zeros((n, 0), dtype=np.float32)
    meta = {"form": "reduced", "template": template,
            "records": [[m, artists.get(m)] for m in frame.ids],
            "raw": [[d.name, d.type] for d in merged.raw_layout.descriptors],
            "variable": list(merged.variable_length), "constant": list(merged.constant),
            "dropped": merged.dropped, "kept": kept, "strings": strings}
    return fb.encode_columns(meta, matrix)


def _fail(what: str) -> None:
    raise fb.BundleError("features bundle (version 2) is malformed: %s" % what)


def _names(value: Any, what: str) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _fail("%s must be a list of names" % what)
    return value


def merged_from_columns(meta: Dict[str, Any], matrix: np.ndarray) -> Tuple[Merged, Dict[str, Optional[str]]]:
    """Check a version-2 header against its matrix and build the merge's result; ``BundleError`` if inconsistent."""
    n, c = matrix.shape
    records = meta.get("records")
    if not isinstance(records, list) or len(records) != n or not all(
            isinstance(r, list) and len(r) == 2 and isinstance(r[0], str) and (r[1] is None or isinstance(r[1], str))
            for r in records):
        _fail("records must be %d [mbid, artist] pairs" % n)
    ids = [r[0] for r in records]
    if ids != sorted(set(ids)):
        _fail("records must be sorted by MBID and unique")
    raw = meta.get("raw")
    if not isinstance(raw, list) or not all(isinstance(r, list) and len(r) == 2 and isinstance(r[0], str)
                                            and r[1] in (REAL, STRING) for r in raw):
        _fail("raw must be [name, type] pairs")
    raw_types = {name: kind for name, kind in raw}
    variable = _names(meta.get("variable"), "variable")
    constant = _names(meta.get("constant"), "constant")
    removed = set(variable) | set(constant)
    dropped = meta.get("dropped")
    if not isinstance(dropped, dict) or not all(isinstance(v, list) and all(isinstance(m, str) for m in v)
                                                for v in dropped.values()):
        _fail("dropped must map names to lists of MBIDs")
    kept = meta.get("kept")
    strings = meta.get("strings")
    if not isinstance(kept, list) or not isinstance(strings, dict):
        _fail("kept and strings are missing")
    values, types, start = {}, {}, 0
    for entry in kept:
        if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str)
                and entry[1] in (REAL, STRING) and isinstance(entry[2], int) and not isinstance(entry[2], bool)
                and 0 < entry[2] <= fb.MAX_VALUES_PER_RECORDING and isinstance(entry[3], bool)):
            _fail("kept must be [name, type, size, used] entries")
        name, kind, size, used = entry
        if raw_types.get(name) != kind or name in values:
            _fail("descriptor %r is not in the raw layout with that type, or repeated" % name)
        if kind == REAL and used:
            if start + size > c:
                _fail("the used descriptors need more than the %d values per recording sent" % c)
            values[name] = np.ascontiguousarray(matrix[:, start:start + size])  # the merge's layout: same BLAS paths
            start += size
        elif kind == REAL:
            values[name] = np.zeros((n, size), dtype=np.float32)  # removed by every set's first step
        else:
            column = strings.get(name) if used else None
            array = np.full((n, size), "", dtype=object)
            if used:
                if not (isinstance(column, list) and len(column) == n and all(
                        isinstance(row, list) and len(row) == size and all(isinstance(s, str) for s in row)
                        for row in column)):
                    _fail("strings of %r must be %d lists of %d strings" % (name, n, size))
                array[:, :] = column
            values[name] = array
        types[name] = kind
    if start != c:
        _fail("%d values per recording sent, the used descriptors take %d" % (c, start))
    if set(values) | set(removed) != set(raw_types) or set(values) & set(removed):
        _fail("kept and removed descriptors must split the raw layout")
    if c and not bool((np.abs(matrix) <= F32_MAX).all()):
        _fail("it holds NaN or infinite values")
    merged = assemble(Frame(ids, values, types), raw_types, dropped, variable, constant, ())
    return merged, {r[0]: r[1] for r in records}


def dataset_from_bundle(data: bytes, name: str, groundtruth: Dict[str, str],
                        max_decompressed: int = fb.DEFAULT_MAX_DECOMPRESSED) -> Dataset:
    """A Dataset from either bundle version, bounded by ``max_decompressed`` and the ground truth's size."""
    if fb.bundle_version(data) == fb.VERSION:
        documents, artists = {}, {}
        for mbid, doc, artist in fb.decode_bundle(data, max_decompressed=max_decompressed,
                                                  expected_records=len(groundtruth)):
            documents[mbid] = doc
            artists[mbid] = artist
        return Dataset(name=name, groundtruth=groundtruth, documents=documents, artists=artists)
    meta, matrix = fb.decode_columns(data, max_decompressed, expected_records=len(groundtruth))
    merged, artists = merged_from_columns(meta, matrix)
    if set(merged.frame.ids) != set(groundtruth):
        raise fb.BundleError("features bundle (version 2) holds other recordings than the job's dataset")
    return Dataset(name=name, groundtruth=groundtruth, documents={}, artists=artists, merged=merged)


def documents_for_prediction(data: bytes, max_decompressed: int = fb.DEFAULT_MAX_DECOMPRESSED
                             ) -> Dict[str, Dict[str, Any]]:
    """Documents a model trained on this bundle predicts exactly as on the originals (either version).

    From version 2 they are rebuilt from the merge's result: every descriptor of the raw
    layout with its type; used values as sent (a matrix as its flattened Real vector:
    the same numbers); values no model reads (unused, variable-length, constant) as zeros.
    """
    if fb.bundle_version(data) == fb.VERSION:
        return {mbid: doc for mbid, doc, _artist in fb.decode_bundle(data, max_decompressed=max_decompressed)}
    meta, matrix = fb.decode_columns(data, max_decompressed)
    merged, _artists = merged_from_columns(meta, matrix)
    frame = merged.frame
    docs = {mbid: {} for mbid in frame.ids}  # type: Dict[str, Dict[str, Any]]
    for d in merged.raw_layout.descriptors:
        keys = d.name.split(".")[1:]
        column = frame.values.get(d.name)
        for row, mbid in enumerate(frame.ids):
            node = docs[mbid]
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            if column is None:
                node[keys[-1]] = [0.0] if d.type == REAL else [""]
            else:
                node[keys[-1]] = column[row].tolist()
    return docs
