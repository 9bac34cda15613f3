"""Trainer test fixtures (paths live in trainer_paths.py: a unique module name, unlike conftest)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trainer_paths import AB_REAL_SMALL  # noqa: E402


@pytest.fixture(scope="module")
def small_dataset():
    from abrunnerd.trainer import load_dataset_dir

    return load_dataset_dir(str(AB_REAL_SMALL))
