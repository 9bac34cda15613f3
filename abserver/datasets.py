"""Datasets in AcousticBrainz form, their low-level documents, and frozen snapshots."""
import hashlib
import json
import os
import stat
import uuid
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import sqlalchemy as sa

from abrunnerd.features_bundle import encode_bundle, strip_document

from . import quota
from .errors import ApiError, invalid
from .quota import QuotaExceeded  # noqa: F401  (re-exported: callers catch it here)
from .text import canonical_uuid, truncated_list
from .tables import bundles, dataset_recordings, datasets, lowlevel, snapshots
from .timefmt import now

# progress(stage, done, total): how far a long dataset operation has come.
Progress = Callable[[str, int, int], None]

MAX_RECORDINGS = 100000


class DatasetError(ValueError):
    """A dataset or document that cannot be stored, with the reason and where."""


def _check_mbid(value: Any, where: str) -> str:
    canonical = canonical_uuid(value)
    if canonical is None:
        raise DatasetError("%s: %r is not a recording MBID (a UUID)" % (where, str(value)[:64]))
    return canonical


def normalize_dataset(data: Any, allow_id: bool = False) -> Dict[str, Any]:
    """Check an AB-form dataset (``name``, ``description``, ``classes``, ``public``).

    Returns ``{"name", "description", "public", "classes": [{"name", "description",
    "recordings"}]}`` with canonical MBIDs; raises DatasetError naming the first problem.
    """
    if not isinstance(data, dict):
        raise DatasetError("a dataset must be a JSON object")
    allowed = {"name", "description", "classes", "public"} | ({"id", "author", "created", "last_edited",
                                                               "num_recordings"} if allow_id else set())
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise DatasetError("unknown dataset field(s): %s" % truncated_list(unknown))
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise DatasetError("dataset 'name' must be a non-empty string of at most 255 characters")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise DatasetError("dataset 'description' must be a string")
    public = data.get("public", True)
    if not isinstance(public, bool):
        raise DatasetError("dataset 'public' must be true or false")
    classes = data.get("classes")
    if not isinstance(classes, list) or not classes:
        raise DatasetError("dataset 'classes' must be a non-empty list")
    out, names, total = [], set(), 0
    for i, cls in enumerate(classes):
        where = "classes[%d]" % i
        if not isinstance(cls, dict):
            raise DatasetError("%s must be an object" % where)
        extra = sorted(set(cls) - {"name", "description", "recordings", "id"})
        if extra:
            raise DatasetError("%s has unknown field(s): %s" % (where, truncated_list(extra)))
        cname = cls.get("name")
        if not isinstance(cname, str) or not cname.strip() or len(cname) > 255:
            raise DatasetError("%s 'name' must be a non-empty string" % where)
        if cname in names:
            raise DatasetError("%s: class name %r appears twice" % (where, cname))
        names.add(cname)
        recordings = cls.get("recordings")
        if not isinstance(recordings, list):
            raise DatasetError("%s 'recordings' must be a list of MBIDs" % where)
        mbids = [_check_mbid(r, "%s.recordings[%d]" % (where, j)) for j, r in enumerate(recordings)]
        total += len(mbids)
        cdesc = cls.get("description") or ""
        if not isinstance(cdesc, str):
            raise DatasetError("%s 'description' must be a string" % where)
        out.append({"name": cname, "description": cdesc, "recordings": mbids})
    if total > MAX_RECORDINGS:
        raise DatasetError("dataset has %d recordings; the limit is %d" % (total, MAX_RECORDINGS))
    return {"name": name, "description": description, "public": public, "classes": out}


def artist_of(doc: Dict[str, Any]) -> Optional[str]:
    """First ``metadata.tags.musicbrainz_artistid`` of a document, as AB's artist filter used."""
    tags = (doc.get("metadata") or {}).get("tags") or {}
    ids = tags.get("musicbrainz_artistid") if isinstance(tags, dict) else None
    if isinstance(ids, list) and ids and isinstance(ids[0], str):
        return ids[0]
    if isinstance(ids, str) and ids:
        return ids
    return None


MAX_DOCUMENT_LEAVES = 20000  # values in one document; Essentia 2.1's extractor writes ~4,500
MAX_BUNDLE_COLUMNS = 20000  # distinct float descriptors over a snapshot (the bundle's width)
DOCUMENT_KEY_NAMESPACE = uuid.UUID("6f1c1f3e-4b8a-5d2e-9a57-2b7d0c6e4a11")


def document_id(owner_id: int, key: str) -> str:
    """The server's UUID for a document that has no MBID (class-folder file, groundtruth id).

    Deterministic in (owner, original key), so re-importing the same data lands on the
    same ids and two owners' equal keys never collide; the key itself is kept as the
    document's ``name`` and is never used as a path."""
    if not isinstance(key, str) or not key or len(key) > 255 or "\x00" in key:
        raise DatasetError("a document key must be 1-255 characters without NUL (got %r)" % (str(key)[:64],))
    return str(uuid.uuid5(DOCUMENT_KEY_NAMESPACE, "%d\n%s" % (owner_id, key)))


def count_leaves(node: Any, limit: int) -> int:
    """Values in a JSON document (an empty list or object counts as one), stopping past ``limit``."""
    count, stack = 0, [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict) and item:
            stack.extend(item.values())
        elif isinstance(item, list) and item:
            stack.extend(item)
        else:
            count += 1
            if count > limit:
                break
    return count


def check_document(doc: Any, mbid: str) -> None:
    if not isinstance(doc, dict) or not isinstance(doc.get("lowlevel"), dict):
        raise DatasetError("low-level document of %s must be an object with a 'lowlevel' section" % mbid)
    if count_leaves(doc, MAX_DOCUMENT_LEAVES) > MAX_DOCUMENT_LEAVES:
        raise DatasetError("low-level document of %s has more than %d values; Essentia's extractors write "
                           "fewer than 5,000" % (mbid, MAX_DOCUMENT_LEAVES))


def put_lowlevel(conn, mbid: str, doc: Dict[str, Any], owner_id: int, artist: Optional[str] = None,
                 name: Optional[str] = None, quota_bytes: int = 0) -> str:
    """Store the owner's document of ``mbid``; returns "stored", "replaced" or "unchanged".

    Documents belong to their owner: another owner's document of the same recording is
    neither read nor changed (each owner's datasets train on their own documents).
    ``quota_bytes`` > 0 caps everything the owner stores (abserver/quota.py): QuotaExceeded.
    """
    check_document(doc, mbid)
    blob = zlib.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), 6)
    key = (lowlevel.c.mbid == mbid) & (lowlevel.c.owner_id == owner_id)
    existing = conn.execute(sa.select(lowlevel.c.document, lowlevel.c.size_bytes).where(key)).first()
    if existing is not None and bytes(existing.document) == blob:
        return "unchanged"
    quota.check(conn, owner_id, len(blob), quota_bytes, "the document of %s" % mbid,
                freed=int(existing.size_bytes or 0) if existing is not None else 0)
    values = {"document": blob, "artist": artist_of(doc) or artist, "size_bytes": len(blob), "created": now()}
    if name is not None:
        values["name"] = name
    if existing is None:
        conn.execute(lowlevel.insert().values(mbid=mbid, owner_id=owner_id, **values))
        return "stored"
    conn.execute(lowlevel.update().where(key).values(**values))
    return "replaced"


def get_documents(conn, mbids: List[str], owner_id: int,
                  progress: Optional[Progress] = None) -> Dict[str, Tuple[Dict[str, Any], Optional[str]]]:
    """``{mbid: (document, artist)}`` for the owner's stored documents among ``mbids``.

    ``progress(stage, done, total)``, when given, is called after every chunk read."""
    found = {}
    for start in range(0, len(mbids), 500):
        chunk = mbids[start:start + 500]
        rows = conn.execute(
            sa.select(lowlevel.c.mbid, lowlevel.c.document, lowlevel.c.artist)
            .where(lowlevel.c.owner_id == owner_id, lowlevel.c.mbid.in_(chunk))
        )
        for row in rows:
            found[row.mbid] = (json.loads(zlib.decompress(row.document).decode("utf-8")), row.artist)
        if progress is not None:
            progress("reading documents", min(start + 500, len(mbids)), len(mbids))
    return found


def visible_documents(conn, mbid: str, user_id: int) -> List[Dict[str, Any]]:
    """The documents of ``mbid`` ``user_id`` may read: their own first, then those of owners who
    name the recording in a public dataset (by owner id). Nothing else."""
    public_owners = (sa.select(datasets.c.owner_id)
                     .select_from(datasets.join(dataset_recordings, dataset_recordings.c.dataset_id == datasets.c.id))
                     .where(dataset_recordings.c.mbid == mbid, datasets.c.public == 1))
    rows = conn.execute(
        sa.select(lowlevel.c.owner_id, lowlevel.c.document)
        .where(lowlevel.c.mbid == mbid)
        .where(sa.or_(lowlevel.c.owner_id == user_id, lowlevel.c.owner_id.in_(public_owners)))
    ).fetchall()
    rows.sort(key=lambda r: (r.owner_id != user_id, r.owner_id))
    return [json.loads(zlib.decompress(r.document).decode("utf-8")) for r in rows]


def create_dataset(conn, owner_id: int, data: Dict[str, Any], dataset_id: Optional[str] = None) -> str:
    dataset_id = dataset_id or str(uuid.uuid4())
    ts = now()
    classes = [dict(c, id=str(i + 1)) for i, c in enumerate(data["classes"])]
    classes_json = json.dumps(classes)
    size = len(classes_json) + len(data["name"].encode("utf-8")) + len(data["description"].encode("utf-8"))
    conn.execute(datasets.insert().values(
        id=dataset_id, owner_id=owner_id, name=data["name"], description=data["description"],
        public=1 if data["public"] else 0, classes=classes_json, created=ts, last_edited=ts, size_bytes=size,
    ))
    mbids = sorted({m for c in classes for m in c["recordings"]})
    if mbids:
        conn.execute(dataset_recordings.insert(), [{"dataset_id": dataset_id, "mbid": m} for m in mbids])
    return dataset_id


MAX_FILE_BYTES = 16 * 1024 * 1024  # a document file, as PUT /low-level takes


def read_json_file(path: Path, max_bytes: int = MAX_FILE_BYTES, allow_nan: bool = False) -> Any:
    """A local JSON file under the API's body rules (size, depth, strings), or DatasetError.

    A path that is not a regular file (FIFO, device, directory) is refused without being
    opened for reading."""
    from .bodies import parse_json

    try:
        st = path.lstat()
    except OSError as exc:
        raise DatasetError("cannot read %s: %s" % (path, exc.strerror))
    if not stat.S_ISREG(st.st_mode):
        raise DatasetError("%s is not a regular file" % path)
    try:
        with open(str(path), "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise DatasetError("cannot read %s: %s" % (path, exc.strerror))
    try:
        return parse_json(raw, max_bytes, allow_nan)
    except ApiError as exc:
        raise DatasetError("%s: %s" % (path, exc.message.replace("request body", "file")))


def _read_artists(path: Path) -> Dict[str, str]:
    if not path.exists():
        return {}
    raw = read_json_file(path)
    if not isinstance(raw, dict):
        raise DatasetError("%s must be an object {recording MBID: artist id}, not a %s"
                           % (path, type(raw).__name__))
    artists = {}
    for key, value in raw.items():
        mbid = _check_mbid(key, "%s key" % path)
        if not isinstance(value, str) or not value or len(value) > 255:
            raise DatasetError("%s: the artist of %s must be a string of 1-255 characters" % (path, mbid))
        artists[mbid] = value
    return artists


class ImportReport(NamedTuple):
    dataset_id: str
    actions: Dict[str, str]  # mbid -> stored | replaced | unchanged | missing

    def count(self, *actions: str) -> int:
        return sum(1 for a in self.actions.values() if a in actions)


def import_dataset_dir(engine: sa.engine.Engine, path: str, owner_id: int, quota_bytes: int = 0) -> ImportReport:
    """Import ``DIR/dataset.json`` + ``DIR/lowlevel/<mbid>.json`` [+ ``artists.json``] for ``owner_id``.

    The same checks as the API: the dataset's structure and trainability, every document's
    size and shape. Only the owner's documents are written; the report says per recording
    whether its document was stored, replaced the owner's previous one, was unchanged, or
    is missing. The artist of a recording is its document's first ``musicbrainz_artistid``,
    else ``artists.json``.
    """
    root = Path(path)
    raw = read_json_file(root / "dataset.json")
    data = normalize_dataset(raw, allow_id=True)
    check_classes(data["classes"])
    artists = _read_artists(root / "artists.json")
    wanted = sorted({m for c in data["classes"] for m in c["recordings"]})
    documents = {}
    for mbid in wanted:  # read and check everything before writing anything
        doc_path = root / "lowlevel" / ("%s.json" % mbid)
        if not os.path.lexists(str(doc_path)):
            continue
        doc = read_json_file(doc_path, allow_nan=True)
        try:
            check_document(doc, mbid)
        except DatasetError as exc:
            raise DatasetError("%s: %s" % (doc_path, exc))
        documents[mbid] = doc
    actions: Dict[str, str] = {}
    dataset_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    with engine.begin() as conn:
        if dataset_id:
            dataset_id = _check_mbid(dataset_id, "dataset id")
            if conn.execute(sa.select(datasets.c.id).where(datasets.c.id == dataset_id)).first():
                dataset_id = None  # imported before: a second copy gets a fresh id
        with quota.guard(conn, owner_id, quota_bytes, "dataset %r with %d documents (nothing of it was "
                         "stored)" % (data["name"][:80], len(documents))):
            for mbid in wanted:
                if mbid in documents:
                    actions[mbid] = put_lowlevel(conn, mbid, documents[mbid], owner_id, artists.get(mbid))
                else:
                    actions[mbid] = "missing"
            dataset_id = create_dataset(conn, owner_id, data, dataset_id)
    return ImportReport(dataset_id, actions)


def get_dataset(conn, dataset_id: str, owner_id: int):
    """The owner's dataset row, or 404 (also for another owner's dataset)."""
    row = conn.execute(sa.select(datasets).where(datasets.c.id == dataset_id)).first()
    if row is None or row.owner_id != owner_id:
        raise ApiError(404, "not_found", "Can't find this dataset.")
    return row


MIN_CLASSES = 2
MIN_PER_CLASS = 2  # AB's rule and the trainer's (abrunnerd.trainer.train.check_groundtruth)


def _names(items: List[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (" and %d more" % (len(items) - limit) if len(items) > limit else "")


def check_classes(classes: List[Dict[str, Any]]) -> None:
    """Refuse (422) what makes every result impossible, naming the recordings and classes:
    a recording listed twice (in one class or two), an empty class, a class below the
    trainable minimum, fewer than two classes."""
    seen: Dict[str, str] = {}
    for cls in classes:
        for mbid in cls["recordings"]:
            if mbid in seen:
                if seen[mbid] == cls["name"]:
                    raise invalid("duplicate_recording", "recording %s is listed twice in class %r"
                                  % (mbid, cls["name"]))
                raise invalid("recording_in_two_classes", "recording %s is in classes %r and %r; a recording "
                              "may be in one class only" % (mbid, seen[mbid], cls["name"]))
            seen[mbid] = cls["name"]
    if len(classes) < MIN_CLASSES:
        raise invalid("too_few_classes", "a dataset needs at least %d classes to be evaluated (it has %d)"
                      % (MIN_CLASSES, len(classes)))
    empty = [c["name"] for c in classes if not c["recordings"]]
    if empty:
        raise invalid("empty_class", "class(es) %s have no recordings" % _names([repr(n) for n in empty]))
    small = [c["name"] for c in classes if len(c["recordings"]) < MIN_PER_CLASS]
    if small:
        raise invalid("too_few_recordings", "class(es) %s have fewer than %d recordings; every class needs "
                      "at least %d to be evaluated" % (_names([repr(n) for n in small]), MIN_PER_CLASS,
                                                       MIN_PER_CLASS))


def check_trainable(classes: List[Dict[str, Any]], have: Dict[str, Any]) -> None:
    """At submit: the class rules above, and every recording has the owner's document."""
    check_classes(classes)
    check_documents_present(sorted({m for c in classes for m in c["recordings"]} - set(have)))


def check_documents_present(missing: List[str]) -> None:
    """422 ``missing_lowlevel`` naming the first recordings without the owner's document."""
    if missing:
        raise invalid("missing_lowlevel", "%d recording(s) have no low-level document of yours: %s; upload "
                      "them (PUT /low-level/<mbid>)" % (len(missing), _names(missing)))


def _float_paths(node: Any, prefix: tuple, out: set, limit: int) -> None:
    if len(out) > limit:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            _float_paths(value, prefix + (key,), out, limit)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _float_paths(value, prefix + (i,), out, limit)
    elif isinstance(node, float):
        out.add(prefix)


class BuiltSnapshot(NamedTuple):
    data: str  # JSON {"name", "description", "classes"}
    bundle: bytes
    bundle_sha256: str
    content_sha256: str


def build_snapshot(conn, dataset_row, options: Optional[Dict[str, Any]] = None,
                   progress: Optional[Progress] = None) -> BuiltSnapshot:
    """Read the dataset and its owner's documents and encode the bundle: the long part of a
    submit, done without the database's write lock (the caller passes a read connection).

    With the job's ``options``, the bundle holds only what its preprocessing sets can use
    when that trains the same (version 2, docs/protocol.md); otherwise every document.
    ``progress(stage, done, total)`` is told how far each stage has come (the admin CLI shows it).
    """
    classes = json.loads(dataset_row.classes)
    check_classes(classes)
    mbids = sorted({m for c in classes for m in c["recordings"]})
    docs = get_documents(conn, mbids, dataset_row.owner_id, progress)
    check_trainable(classes, docs)
    stripped = []
    for i, m in enumerate(mbids, 1):
        stripped.append((m, strip_document(docs[m][0]), docs[m][1]))
        if progress is not None and (i % 100 == 0 or i == len(mbids)):
            progress("preparing documents", i, len(mbids))
    columns: set = set()
    for _m, doc, _a in stripped:
        _float_paths(doc, (), columns, MAX_BUNDLE_COLUMNS)
        if len(columns) > MAX_BUNDLE_COLUMNS:
            raise invalid("too_wide", "the documents of this dataset have more than %d distinct float "
                          "descriptors together (recording %s brings the count past it); documents from "
                          "one Essentia extractor share ~4,500" % (MAX_BUNDLE_COLUMNS, _m))
    del docs
    try:
        from abrunnerd.trainer.bundle import encode_for_job  # numpy; without it: the complete form
    except ImportError:
        options = None
    if progress is not None:
        progress("encoding the features bundle", 0, len(stripped))
    bundle = encode_bundle(stripped) if options is None else encode_for_job(stripped, options)
    if progress is not None:
        progress("encoding the features bundle", len(stripped), len(stripped))
    bundle_sha = hashlib.sha256(bundle).hexdigest()
    data = json.dumps({"name": dataset_row.name, "description": dataset_row.description, "classes": classes},
                      sort_keys=True)
    content = hashlib.sha256(data.encode("utf-8") + b"\0" + bundle_sha.encode("ascii")).hexdigest()
    return BuiltSnapshot(data, bundle, bundle_sha, content)


def store_snapshot(conn, dataset_id: str, built: BuiltSnapshot, quota_bytes: int = 0) -> str:
    """Store ``built`` (in a write transaction); an equal snapshot of the dataset is reused and a
    bundle already stored is not stored again.

    A new snapshot counts against the dataset owner's ``quota_bytes`` (abserver/quota.py: its
    definition, and its bundle unless another of the owner's snapshots references it already);
    over it, QuotaExceeded (413) and nothing is stored."""
    row = conn.execute(sa.select(snapshots.c.id).where(snapshots.c.dataset_id == dataset_id,
                                                       snapshots.c.content_sha256 == built.content_sha256)
                       .order_by(snapshots.c.created).limit(1)).first()
    if row is not None:
        return row.id
    owner_id = conn.execute(sa.select(datasets.c.owner_id).where(datasets.c.id == dataset_id)).scalar()
    ts = now()
    snapshot_id = str(uuid.uuid4())
    with quota.guard(conn, owner_id, quota_bytes, "a snapshot of dataset %s with its features bundle" % dataset_id):
        if conn.execute(sa.select(bundles.c.sha256).where(bundles.c.sha256 == built.bundle_sha256)).first() is None:
            conn.execute(bundles.insert().values(sha256=built.bundle_sha256, data=built.bundle,
                                                 size_bytes=len(built.bundle), created=ts))
        conn.execute(snapshots.insert().values(
            id=snapshot_id, dataset_id=dataset_id, data=built.data, bundle_sha256=built.bundle_sha256,
            content_sha256=built.content_sha256, created=ts, size_bytes=len(built.data),
        ))
    return snapshot_id
