"""``abserver import-dataset`` for Gaia users' forms: class folders, or a groundtruth + filelist.

The files are found and read by the trainer's own readers (``abrunnerd.trainer.
class_folders``/``gaia_lists`` for the layout, ``abrunnerd.documents`` for each document:
bounded, regular files only, safe YAML), so the server accepts exactly what
``abrunnerctl train`` accepts.  Documents are stored unstripped, like an AB-form import
(stripping happens when the features bundle is built).  A file stem or groundtruth id that
is a UUID is taken as the recording's MBID; any other key gets the owner's deterministic
id (``datasets.document_id``: uuid5 of owner and key) and is kept as the document's
``name``, never as a path (decisions.md 7c).  Everything is read and checked before
anything is written, in one transaction.
"""
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import sqlalchemy as sa

from abrunnerd.documents import DocumentError, parse_document, read_file
from abrunnerd.trainer.errors import DatasetError as ReaderError

from .datasets import (DatasetError, ImportReport, check_classes, check_document, create_dataset, document_id,
                       import_dataset_dir, normalize_dataset, put_lowlevel)
from . import quota
from .text import canonical_uuid


def _files(class_dir: Optional[str], classes: Optional[Sequence[str]], groundtruth: Optional[str],
           filelist: Optional[str]) -> Tuple[str, Dict[str, str], Dict[str, str]]:
    """(default dataset name, {key: class}, {key: file}) of either form."""
    from abrunnerd.trainer.class_folders import find_documents
    from abrunnerd.trainer.gaia_lists import read_filelist, read_groundtruth

    try:
        if groundtruth:
            name, gt = read_groundtruth(groundtruth)
            files = read_filelist(filelist)
            only_gt = sorted(set(gt) - set(files))
            only_fl = sorted(set(files) - set(gt))
            if only_gt or only_fl:
                raise DatasetError("groundtruth %s and filelist %s list different ids (e.g. %s); Gaia requires the "
                                   "same ids in both" % (groundtruth, filelist, (only_gt + only_fl)[0]))
            return name, gt, files
        found = find_documents(class_dir, classes)
    except ReaderError as exc:
        raise DatasetError(str(exc)) from None
    gt, files = {}, {}
    for cls, entries in found.items():
        for key, path in entries.items():
            gt[key], files[key] = cls, path
    return os.path.basename(os.path.abspath(class_dir)), gt, files


def _read(path: str) -> Dict[str, Any]:
    fmt = "json" if path.lower().endswith(".json") else "yaml"
    try:
        return parse_document(read_file(path), fmt)
    except DocumentError as exc:
        raise DatasetError("%s: %s" % (path, exc)) from None


def import_gaia_dataset(engine: sa.engine.Engine, owner_id: int, class_dir: Optional[str] = None,
                        classes: Optional[Sequence[str]] = None, groundtruth: Optional[str] = None,
                        filelist: Optional[str] = None, name: Optional[str] = None,
                        quota_bytes: int = 0) -> Tuple[ImportReport, Dict[str, str]]:
    """Import one Gaia-form dataset for ``owner_id``: (report, {server id: original key})."""
    default_name, gt, files = _files(class_dir, classes, groundtruth, filelist)
    ids: Dict[str, str] = {}  # key -> server id
    for key in sorted(gt):
        mbid = canonical_uuid(key)
        ids[key] = mbid if mbid is not None else document_id(owner_id, key)
    if len(set(ids.values())) != len(ids):
        seen: Dict[str, str] = {}
        for key, mbid in sorted(ids.items()):
            if mbid in seen:
                raise DatasetError("ids %r and %r name the same recording %s" % (seen[mbid], key, mbid))
            seen[mbid] = key
    by_class: Dict[str, List[str]] = {}
    for key in sorted(gt):
        by_class.setdefault(gt[key], []).append(ids[key])
    data = normalize_dataset({"name": (name or default_name)[:255],
                              "classes": [{"name": c, "recordings": r} for c, r in sorted(by_class.items())]})
    check_classes(data["classes"])
    documents = {}
    for key in sorted(gt):  # read and check everything before writing anything
        doc = _read(files[key])
        try:
            check_document(doc, key)
        except DatasetError as exc:
            raise DatasetError("%s: %s" % (files[key], exc)) from None
        documents[ids[key]] = doc
    names = {mbid: key for key, mbid in ids.items() if mbid != canonical_uuid(key)}
    actions: Dict[str, str] = {}
    with engine.begin() as conn:
        with quota.guard(conn, owner_id, quota_bytes, "dataset %r with %d documents (nothing of it was "
                         "stored)" % (data["name"][:80], len(documents))):
            for mbid in sorted(documents):
                actions[mbid] = put_lowlevel(conn, mbid, documents[mbid], owner_id, name=names.get(mbid))
            dataset_id = create_dataset(conn, owner_id, data)
    return ImportReport(dataset_id, actions), names


def import_from_args(engine: sa.engine.Engine, args: Any, owner_id: int) -> Tuple[ImportReport, Dict[str, str]]:
    """The ``import-dataset`` command's forms: AB-form DIR, class-folder DIR, or --groundtruth/--filelist."""
    groundtruth, filelist = getattr(args, "groundtruth", None), getattr(args, "filelist", None)
    if (groundtruth is None) != (filelist is None):
        raise DatasetError("--groundtruth and --filelist go together; give both")
    if groundtruth and args.dir:
        raise DatasetError("give either DIR or --groundtruth/--filelist, not both")
    if groundtruth:
        return import_gaia_dataset(engine, owner_id, groundtruth=groundtruth, filelist=filelist,
                                   name=args.name, quota_bytes=args.quota_bytes)
    if not args.dir:
        raise DatasetError("give DIR (AB form or class folders) or --groundtruth FILE --filelist FILE")
    if os.path.isdir(args.dir) and not os.path.exists(os.path.join(args.dir, "dataset.json")):
        return import_gaia_dataset(engine, owner_id, class_dir=args.dir, classes=args.classes, name=args.name,
                                   quota_bytes=args.quota_bytes)
    if args.name or args.classes:
        raise DatasetError("--name and --classes apply to class folders and groundtruth/filelist imports only")
    return import_dataset_dir(engine, args.dir, owner_id, quota_bytes=args.quota_bytes), {}
