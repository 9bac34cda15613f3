"""Gaia's ``train_model`` input: a groundtruth YAML and a filelist YAML.

groundtruth: ``{type: singleClass, version: 1.0, className: NAME, groundTruth: {id: class}}``.
Gaia's ``GroundTruth.load`` needs the ``type`` and ``version`` keys and refuses the file
only when *both* differ from ``singleClass`` / ``1.0``; we accept exactly what it
accepts.  filelist: ``{id: path}``; a relative path is taken relative to the filelist's
own folder (Gaia takes it relative to its current directory, which ``run_tests``
changes to the project's folder: a source of "file not found" that we avoid).  The
two lists must hold the same ids, as Gaia's ``generate_project`` requires.
"""
import os
from typing import Any, Dict, List, Tuple

from abrunnerd.trainer.dataset import Dataset
from abrunnerd.trainer.errors import DatasetError
from abrunnerd.trainer.extractor_docs import check_one_layout, read_document
from abrunnerd.trainer.input_files import MAX_LIST_BYTES, read_mapping, problem

MAX_ENTRIES = 200 * 1000
MAX_NAME = 1024


def _key(k: Any, path: str) -> str:
    key = str(k)
    if not key or len(key) > MAX_NAME or "\x00" in key:
        raise problem("%s: id %r is empty, longer than %d characters or holds NUL" % (path, key[:60], MAX_NAME))
    return key


def _sample(ids: List[str]) -> str:
    return ", ".join(sorted(ids)[:3]) + (" and %d more" % (len(ids) - 3) if len(ids) > 3 else "")


def read_groundtruth(path: str) -> Tuple[str, Dict[str, str]]:
    """(className, {id: class})."""
    data = read_mapping(path, MAX_LIST_BYTES, "groundtruth")
    missing = [k for k in ("type", "version") if k not in data]
    if missing:
        raise problem("groundtruth %s lacks the %s key(s) Gaia requires; add 'type: singleClass' and "
                           "'version: 1.0'" % (path, " and ".join(repr(m) for m in missing)))
    if data["version"] != 1.0 and data["type"] != "singleClass":
        raise problem("groundtruth %s is type %r version %r; Gaia (and we) read 'singleClass' version 1.0 only"
                           % (path, data["type"], data["version"]))
    name, table = data.get("className"), data.get("groundTruth")
    if not isinstance(name, str) or not name or not isinstance(table, dict):
        raise problem("groundtruth %s needs 'className: <name>' and a 'groundTruth:' mapping of id: class"
                           % path)
    if not table:
        raise problem("groundtruth %s has an empty groundTruth mapping" % path)
    if len(table) > MAX_ENTRIES:
        raise problem("groundtruth %s has %d entries, more than the limit of %d" % (path, len(table), MAX_ENTRIES))
    out = {}
    for k, v in table.items():
        if isinstance(v, bool) or not isinstance(v, (str, int, float)) or str(v) == "":
            raise problem("groundtruth %s: the class of %s must be a name, got %r" % (path, k, v))
        out[_key(k, path)] = str(v)
    return name, out


def read_filelist(path: str) -> Dict[str, str]:
    """{id: absolute path}; relative paths are relative to the filelist's folder."""
    data = read_mapping(path, MAX_LIST_BYTES, "filelist")
    if len(data) > MAX_ENTRIES:
        raise problem("filelist %s has %d entries, more than the limit of %d" % (path, len(data), MAX_ENTRIES))
    base = os.path.dirname(os.path.abspath(path))
    out = {}
    for k, v in data.items():
        if not isinstance(v, str) or not v or "\x00" in v:
            raise problem("filelist %s: the file of %s must be a path, got %r" % (path, k, v))
        out[_key(k, path)] = os.path.normpath(os.path.join(base, v))
    return out


def load_groundtruth_filelist(groundtruth_path: str, filelist_path: str) -> Dataset:
    """The dataset of a groundtruth + filelist pair; its name is the groundtruth's className."""
    name, groundtruth = read_groundtruth(groundtruth_path)
    files = read_filelist(filelist_path)
    only_gt = [k for k in groundtruth if k not in files]
    if only_gt:
        raise problem("%d id(s) of groundtruth %s are not in filelist %s: %s; add their files or remove them"
                           % (len(only_gt), groundtruth_path, filelist_path, _sample(only_gt)))
    only_fl = [k for k in files if k not in groundtruth]
    if only_fl:
        raise problem("%d id(s) of filelist %s are not in groundtruth %s: %s; give them a class or remove them"
                           % (len(only_fl), filelist_path, groundtruth_path, _sample(only_fl)))
    documents = {}
    for key in sorted(groundtruth):
        documents[key] = read_document(files[key])
    check_one_layout(documents, files)
    return Dataset(name=name, groundtruth=groundtruth, documents=documents, artists={k: None for k in groundtruth})
