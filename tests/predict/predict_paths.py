"""Paths of Gaia-made test data (read from ../shared, decisions.md item 5), shared by tests/predict."""
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE.parent / "gaia") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "gaia"))  # gaia_oracle, oracle_worker: the oracle helpers

from gaia_oracle import SHARED_DATA  # noqa: E402

AB_REFERENCE = SHARED_DATA / "ab-real-1" / "gaia-reference" / "ab-real-1.history"
ESSENTIA_REFERENCE = SHARED_DATA / "essentia-real-1" / "gaia-reference" / "voice_instrumental.history"


def need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip("%s missing: %s (Gaia's files are read from ../shared, decisions.md item 5)" % (what, path))
    return path
