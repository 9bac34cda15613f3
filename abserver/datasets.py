"""Datasets in AcousticBrainz form, their low-level documents, and frozen snapshots."""
import hashlib
import json
import uuid
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import sqlalchemy as sa

from abrunnerd.features_bundle import encode_bundle, strip_document

from .errors import ApiError, invalid
from .tables import datasets, lowlevel, snapshots
from .timefmt import now

MAX_RECORDINGS = 100000


class DatasetError(ValueError):
    """A dataset or document that cannot be stored, with the reason and where."""


def _check_mbid(value: Any, where: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise DatasetError("%s: %r is not a recording MBID (a UUID)" % (where, value))


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
        raise DatasetError("unknown dataset field(s): %s" % ", ".join(unknown))
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
            raise DatasetError("%s has unknown field(s): %s" % (where, ", ".join(extra)))
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


def check_document(doc: Any, mbid: str) -> None:
    if not isinstance(doc, dict) or not isinstance(doc.get("lowlevel"), dict):
        raise DatasetError("low-level document of %s must be an object with a 'lowlevel' section" % mbid)


class NotOwner(DatasetError):
    """The recording's document was stored by another user."""


def put_lowlevel(conn, mbid: str, doc: Dict[str, Any], owner_id: Optional[int],
                 artist: Optional[str] = None) -> bool:
    """Store the document of ``mbid`` (zlib-compressed), or replace one the same user stored.

    Documents are shared by every dataset that names the recording, so another user's
    document is never replaced (NotOwner): that would change what their jobs train on.
    """
    check_document(doc, mbid)
    existing = conn.execute(sa.select(lowlevel.c.owner_id).where(lowlevel.c.mbid == mbid)).first()
    if existing is not None and existing.owner_id not in (None, owner_id):
        raise NotOwner("the low-level document of %s was stored by another user; it cannot be replaced" % mbid)
    blob = zlib.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), 6)
    values = {"document": blob, "artist": artist_of(doc) or artist, "owner_id": owner_id, "created": now()}
    if existing is None:
        conn.execute(lowlevel.insert().values(mbid=mbid, **values))
    else:
        conn.execute(lowlevel.update().where(lowlevel.c.mbid == mbid).values(**values))
    return True


def get_documents(conn, mbids: List[str]) -> Dict[str, Tuple[Dict[str, Any], Optional[str]]]:
    """``{mbid: (document, artist)}`` for the stored ones among ``mbids``."""
    found = {}
    for start in range(0, len(mbids), 500):
        chunk = mbids[start:start + 500]
        rows = conn.execute(
            sa.select(lowlevel.c.mbid, lowlevel.c.document, lowlevel.c.artist)
            .where(lowlevel.c.mbid.in_(chunk))
        )
        for row in rows:
            found[row.mbid] = (json.loads(zlib.decompress(row.document).decode("utf-8")), row.artist)
    return found


def create_dataset(conn, owner_id: int, data: Dict[str, Any], dataset_id: Optional[str] = None) -> str:
    dataset_id = dataset_id or str(uuid.uuid4())
    ts = now()
    classes = [dict(c, id=str(i + 1)) for i, c in enumerate(data["classes"])]
    conn.execute(datasets.insert().values(
        id=dataset_id, owner_id=owner_id, name=data["name"], description=data["description"],
        public=1 if data["public"] else 0, classes=json.dumps(classes), created=ts, last_edited=ts,
    ))
    return dataset_id


def import_dataset_dir(engine: sa.engine.Engine, path: str, owner_id: int) -> Tuple[str, int, List[str]]:
    """Import ``DIR/dataset.json`` + ``DIR/lowlevel/<mbid>.json`` [+ ``artists.json``].

    Returns (dataset id, documents stored, MBIDs without a document). The artist of a
    recording is its document's first ``musicbrainz_artistid``, else ``artists.json``.
    """
    root = Path(path)
    try:
        raw = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError("cannot read %s: %s" % (root / "dataset.json", exc.strerror))
    except ValueError as exc:
        raise DatasetError("%s is not valid JSON: %s" % (root / "dataset.json", exc))
    data = normalize_dataset(raw, allow_id=True)
    artists: Dict[str, str] = {}
    if (root / "artists.json").exists():
        try:
            artists = json.loads((root / "artists.json").read_text(encoding="utf-8"))
        except ValueError as exc:
            raise DatasetError("%s is not valid JSON: %s" % (root / "artists.json", exc))
    wanted = sorted({m for c in data["classes"] for m in c["recordings"]})
    missing, stored = [], 0
    dataset_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    with engine.begin() as conn:
        if dataset_id:
            dataset_id = _check_mbid(dataset_id, "dataset id")
            if conn.execute(sa.select(datasets.c.id).where(datasets.c.id == dataset_id)).first():
                dataset_id = None  # imported before: a second copy gets a fresh id
        for mbid in wanted:
            doc_path = root / "lowlevel" / ("%s.json" % mbid)
            if not doc_path.exists():
                missing.append(mbid)
                continue
            try:
                doc = json.loads(doc_path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise DatasetError("%s is not valid JSON: %s" % (doc_path, exc))
            try:
                put_lowlevel(conn, mbid, doc, owner_id, artists.get(mbid))
                stored += 1
            except NotOwner:
                pass  # another user's copy of this recording stays; the dataset uses it
        dataset_id = create_dataset(conn, owner_id, data, dataset_id)
    return dataset_id, stored, missing


def get_dataset(conn, dataset_id: str, owner_id: int):
    """The owner's dataset row, or 404 (also for another owner's dataset)."""
    row = conn.execute(sa.select(datasets).where(datasets.c.id == dataset_id)).first()
    if row is None or row.owner_id != owner_id:
        raise ApiError(404, "not_found", "Can't find this dataset.")
    return row


def check_trainable(classes: List[Dict[str, Any]], have: Dict[str, Any]) -> None:
    """AB's queueing rules: ≥ 2 classes, ≥ 2 recordings each, every recording has data."""
    if len(classes) < 2:
        raise invalid("too_few_classes", "a dataset needs at least 2 classes to be evaluated")
    for cls in classes:
        if len(set(cls["recordings"])) < 2:
            raise invalid("too_few_recordings",
                          "class %r needs at least 2 recordings to be evaluated" % cls["name"])
    missing = sorted({m for c in classes for m in c["recordings"]} - set(have))
    if missing:
        raise invalid("missing_lowlevel", "%d recording(s) have no low-level document, e.g. %s"
                      % (len(missing), ", ".join(missing[:5])))


def create_snapshot(conn, dataset_row, options: Optional[Dict[str, Any]] = None) -> str:
    """Freeze the dataset as it is now, with its features bundle (what the job trains on).

    With the job's ``options``, the bundle holds only what its preprocessing sets can use
    when that trains the same (version 2, docs/protocol.md); otherwise every document.
    """
    classes = json.loads(dataset_row.classes)
    mbids = sorted({m for c in classes for m in c["recordings"]})
    docs = get_documents(conn, mbids)
    check_trainable(classes, docs)
    records = ((m, strip_document(docs[m][0]), docs[m][1]) for m in mbids)
    if options is None:
        bundle = encode_bundle(records)
    else:
        from abrunnerd.trainer.bundle import encode_for_job

        bundle = encode_for_job(records, options)
    snapshot_id = str(uuid.uuid4())
    data = {"name": dataset_row.name, "description": dataset_row.description, "classes": classes}
    conn.execute(snapshots.insert().values(
        id=snapshot_id, dataset_id=dataset_row.id, data=json.dumps(data), bundle=bundle,
        bundle_sha256=hashlib.sha256(bundle).hexdigest(), created=now(),
    ))
    return snapshot_id
