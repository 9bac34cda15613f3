"""Gaia's ``train_model_from_sigs`` input: a directory whose subfolders are the classes.

Each ``<dir>/<class>/<id>.json`` (or ``.sig`` / ``.yaml``) is one example of
``<class>``; the id is the file name without its extension, as Gaia names its points.
Unlike Gaia's script nothing is written into the input (Gaia writes a ``.sig`` next to
every JSON).  Differences, all refused with one line instead of being guessed: an id in
two classes (Gaia: the class listed last by the file system wins), a folder without
documents (Gaia: silently no class).  Hidden entries (``.name``) are skipped; other
files are ignored, as Gaia ignores them.
"""
import os
from typing import Dict, List, Optional, Sequence

from abrunnerd.trainer.dataset import Dataset
from abrunnerd.trainer.errors import DatasetError
from abrunnerd.trainer.input_files import problem
from abrunnerd.trainer.extractor_docs import DOCUMENT_EXTENSIONS, check_one_layout, read_document

MAX_CLASSES = 1000
MAX_DOCUMENTS = 200 * 1000


def is_class_folder_dir(path: str) -> bool:
    """A directory with subfolders and no AB-form ``dataset.json``."""
    if not os.path.isdir(path) or os.path.exists(os.path.join(path, "dataset.json")):
        return False
    return any(_class_dirs(path))


def _class_dirs(path: str) -> List[str]:
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        raise problem("cannot list %s: %s" % (path, e.strerror or e)) from None
    return [n for n in names if not n.startswith(".") and os.path.isdir(os.path.join(path, n))]


def find_documents(path: str, classes: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, str]]:
    """``{class: {id: file}}``: one file per id, ``.json`` preferred over ``.sig`` over ``.yaml``."""
    names = _class_dirs(path)
    if classes:
        missing = [c for c in classes if c not in names]
        if missing:
            raise problem("class folder %s does not exist in %s (found: %s)"
                               % (missing[0], path, ", ".join(names) or "none"))
        names = list(classes)
    if not names:
        raise problem("%s has no class subfolders (expected <class>/<id>.json files)" % path)
    if len(names) > MAX_CLASSES:
        raise problem("%s has %d subfolders, more than the limit of %d classes" % (path, len(names), MAX_CLASSES))
    found: Dict[str, Dict[str, str]] = {}
    owner: Dict[str, str] = {}
    total = 0
    for cls in names:
        folder = os.path.join(path, cls)
        files: Dict[str, str] = {}
        for entry in sorted(os.listdir(folder)):
            stem, ext = os.path.splitext(entry)
            if entry.startswith(".") or ext.lower() not in DOCUMENT_EXTENSIONS or not stem:
                continue
            current = files.get(stem)
            if current is None or DOCUMENT_EXTENSIONS.index(ext.lower()) < \
                    DOCUMENT_EXTENSIONS.index(os.path.splitext(current)[1].lower()):
                files[stem] = os.path.join(folder, entry)
        if not files:
            raise problem("class folder %s holds no extractor outputs (*.json, *.sig, *.yaml); remove it "
                               "or name the classes with --classes" % folder)
        for stem in files:
            if stem in owner:
                raise problem("id %s is in two class folders, %s and %s; an example belongs to one class"
                                   % (stem, owner[stem], cls))
            owner[stem] = cls
        total += len(files)
        if total > MAX_DOCUMENTS:
            raise problem("%s holds more than %d documents" % (path, MAX_DOCUMENTS))
        found[cls] = files
    return found


def load_class_folders(path: str, name: Optional[str] = None, classes: Optional[Sequence[str]] = None) -> Dataset:
    """The dataset of a class-folder directory; ``name`` defaults to the directory's name."""
    found = find_documents(path, classes)
    groundtruth, documents, paths = {}, {}, {}
    for cls, files in found.items():
        for key, file_path in files.items():
            groundtruth[key] = cls
            paths[key] = file_path
    for key in sorted(paths):  # id order, like the other forms: batched predictions see the same rows
        documents[key] = read_document(paths[key])
    check_one_layout(documents, paths)
    title = name or os.path.basename(os.path.abspath(path))
    return Dataset(name=title, groundtruth=groundtruth, documents=documents, artists={k: None for k in groundtruth})
