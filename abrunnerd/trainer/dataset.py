"""The dataset a training run works on, and the loader for AB-form directories.

An AB-form directory holds ``dataset.json`` (AcousticBrainz's dataset JSON: ``name``,
``classes: [{name, recordings}]``), ``lowlevel/<mbid>.json`` (one low-level document per
recording) and optionally ``artists.json`` (``{mbid: artist}``).
"""
import json
import os
from typing import Any, Dict, Optional

from abrunnerd.features_bundle import strip_document  # AB's stripping, shared with the server
from abrunnerd.trainer.errors import DatasetError


class Dataset:
    """Ground truth, stripped low-level documents and artists, keyed by recording MBID.

    ``merged``: instead of documents, the merge's result itself (a version-2 features
    bundle, ``abrunnerd.trainer.bundle``); ``documents`` is then empty.
    """

    __slots__ = ("name", "groundtruth", "documents", "artists", "merged")

    def __init__(self, name: str, groundtruth: Dict[str, str], documents: Dict[str, Dict[str, Any]],
                 artists: Optional[Dict[str, Optional[str]]] = None, merged: Any = None) -> None:
        self.name = name
        self.groundtruth = groundtruth
        self.documents = documents
        self.artists = {} if artists is None else artists  # type: Dict[str, Optional[str]]
        self.merged = merged

    def __repr__(self) -> str:
        return "Dataset(%r, %d recordings)" % (self.name, len(self.groundtruth))


def artist_from_tags(doc: Dict[str, Any]) -> Optional[str]:
    """AB's artist for the artist filter: the first ``metadata.tags.musicbrainz_artistid``."""
    tags = (doc.get("metadata") or {}).get("tags") or {}
    value = tags.get("musicbrainz_artistid")
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) and value else None


def groundtruth_from_dataset_json(data: Any, where: str) -> Dict[str, str]:
    """``{mbid: class}`` from AB's dataset JSON; a recording in two classes ends in the later one."""
    classes = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(classes, list):
        raise DatasetError("%s: expected an object with a \"classes\" list" % where)
    groundtruth = {}
    for i, cls in enumerate(classes):
        if not isinstance(cls, dict) or not isinstance(cls.get("name"), str) or not isinstance(
                cls.get("recordings"), list):
            raise DatasetError("%s: classes[%d] needs a string \"name\" and a \"recordings\" list" % (where, i))
        for mbid in cls["recordings"]:
            if not isinstance(mbid, str) or not mbid or "/" in mbid:
                raise DatasetError("%s: class %r has an invalid recording id %r" % (where, cls["name"], mbid))
            groundtruth[mbid] = cls["name"]
    return groundtruth


def _artist(value: Any, where: str, mbid: str) -> Optional[str]:
    """An artist from artists.json: text, or a number taken as its text (an id)."""
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise DatasetError("%s: the artist of %s must be a string, not %s" % (where, mbid, type(value).__name__))


def _read_json(path: str) -> Any:
    if os.path.exists(path) and not os.path.isfile(path):
        raise DatasetError("%s is not a regular file" % path)
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise DatasetError("missing file %s" % path) from None
    except RecursionError:
        raise DatasetError("%s is nested too deeply to be a low-level document" % path) from None
    except OSError as e:
        raise DatasetError("cannot read %s: %s" % (path, e.strerror or e)) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise DatasetError("%s is not valid JSON: %s" % (path, e)) from None


def load_dataset_dir(path: str) -> Dataset:
    """Load an AB-form directory; documents are stripped as AB stripped them."""
    meta_path = os.path.join(path, "dataset.json")
    data = _read_json(meta_path)
    groundtruth = groundtruth_from_dataset_json(data, meta_path)
    name = data.get("name") if isinstance(data.get("name"), str) else os.path.basename(os.path.abspath(path))
    artists_path = os.path.join(path, "artists.json")
    artists = _read_json(artists_path) if os.path.exists(artists_path) else {}
    if not isinstance(artists, dict):
        raise DatasetError("%s must map recording MBIDs to artist names" % artists_path)
    documents, doc_artists = {}, {}
    for mbid in sorted(groundtruth):
        doc_path = os.path.join(path, "lowlevel", mbid + ".json")
        if not os.path.exists(doc_path):
            raise DatasetError("recording %s (class %r) has no low-level document: %s is missing"
                               % (mbid, groundtruth[mbid], doc_path))
        doc = _read_json(doc_path)
        if not isinstance(doc, dict):
            raise DatasetError("%s: a low-level document must be a JSON object" % doc_path)
        doc_artists[mbid] = _artist(artists.get(mbid), artists_path, mbid) or artist_from_tags(doc)
        documents[mbid] = strip_document(doc)
    return Dataset(name=name, groundtruth=groundtruth, documents=documents, artists=doc_artists)
