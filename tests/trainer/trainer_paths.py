"""Paths the trainer tests use: the bundled slice and Gaia's reference results in ../shared."""
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
AB_REAL_SMALL = REPO / "examples" / "ab-real-small"
SHARED = REPO.parent / "shared"
AB_REAL_1 = SHARED / "data" / "ab-real-1"
GAIA_REFERENCE = AB_REAL_1 / "gaia-reference"


def need_shared(*parts: str) -> Path:
    """A path under ../shared/data/ab-real-1, or skip saying exactly which file is missing."""
    path = AB_REAL_1.joinpath(*parts)
    if not path.exists():
        pytest.skip("Gaia reference data missing: %s (CI provides ../shared beside the clone)" % path)
    return path


ESSENTIA_REAL_1 = SHARED / "data" / "essentia-real-1"


def need_essentia_real(*parts: str) -> Path:
    """A path under ../shared/data/essentia-real-1, or skip saying exactly which file is missing."""
    path = ESSENTIA_REAL_1.joinpath(*parts)
    if not path.exists():
        pytest.skip("Gaia reference data missing: %s (CI provides ../shared beside the clone)" % path)
    return path
