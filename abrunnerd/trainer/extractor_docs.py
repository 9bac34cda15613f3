"""One Essentia extractor output (``.json``, or the YAML ``.sig`` / ``.yaml`` that Gaia and Essentia write).

Parsed at the edge into a plain mapping and stripped as Gaia's ``json_to_sig`` (and
AcousticBrainz) strip it: ``metadata.tags``, ``metadata.audio_properties.sample_rate``
and ``.lossless`` go, since they differ between files and would split the layout.
The input file is only read, through :mod:`abrunnerd.documents` (bounded, regular files
only), the reader ``abrunnerctl predict`` uses.  :func:`layout_family` names which extractor layout a
document has, so a dataset mixing them gets one clear line instead of a pattern error.
"""
import os
from typing import Any, Dict, Optional

from abrunnerd.documents import DocumentError, parse_document, read_file  # shared with abrunnerctl predict
from abrunnerd.features_bundle import strip_document
from abrunnerd.trainer.errors import DatasetError
from abrunnerd.trainer.input_files import problem

DOCUMENT_EXTENSIONS = (".json", ".sig", ".yaml")  # preference order when one id has several
TOP_LEVEL_KEYS = ("lowlevel", "rhythm", "tonal", "metadata")


def read_document(path: str) -> Dict[str, Any]:
    """The stripped document of one extractor output file."""
    fmt = "json" if os.path.splitext(path)[1].lower() == ".json" else "yaml"
    try:
        doc = parse_document(read_file(path), fmt)
    except DocumentError as e:
        if not os.path.lexists(path):
            raise problem("extractor output %s does not exist" % path) from None
        raise problem("extractor output %s: %s" % (path, e)) from None
    if not any(k in doc for k in TOP_LEVEL_KEYS):
        raise problem("%s is not an Essentia extractor output (expected a mapping with %s); "
                           "remove it or point at the class folders only" % (path, "/".join(TOP_LEVEL_KEYS)))
    return strip_document(doc)


def layout_family(doc: Dict[str, Any]) -> Optional[str]:
    """``"music 1.0"`` (AcousticBrainz, ``tonal.key_key``), ``"music 2.0"`` (``tonal.key_edma``) or None."""
    tonal = doc.get("tonal")
    if not isinstance(tonal, dict):
        return None
    if "key_key" in tonal:
        return "music 1.0"
    if "key_edma" in tonal:
        return "music 2.0"
    return None


def check_one_layout(documents: Dict[str, Dict[str, Any]], paths: Dict[str, str]) -> None:
    """Refuse a dataset whose documents come from extractors with different layouts."""
    seen: Dict[str, str] = {}
    for key in sorted(documents):
        family = layout_family(documents[key])
        if family is not None:
            seen.setdefault(family, key)
    if len(seen) > 1:
        (fa, ka), (fb, kb) = sorted(seen.items())
        raise problem("mixed extractor layouts: %s has the %s layout (tonal.key_key), %s the %s layout "
                           "(tonal.key_edma); extract every file with one Essentia version, or train them "
                           "separately" % (paths.get(ka, ka), fa, paths.get(kb, kb), fb))
