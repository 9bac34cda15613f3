"""Fixtures for the Gaia history tests: Gaia's reference file and the Essentia oracle.

Gaia's own files stay in ``../shared`` (decisions.md item 5): tests that need them skip
with the exact missing path.  The oracle venv is built by ``tools/essentia-oracle-venv``
on first use; with ``ABRUNNERD_ORACLE=required`` (CI) a failure to build it fails the
tests instead of skipping them.
"""
import json
import os
import subprocess
from pathlib import Path
from typing import Dict

import pytest

from gaia_oracle import (AB_REAL_1, ORACLE_SCRIPT, REFERENCE_DIR, REFERENCE_HISTORY, REPO, Oracle)


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip("%s missing: %s (Gaia's files are read from ../shared, decisions.md item 5)" % (what, path))
    return path


@pytest.fixture(scope="session")
def reference_history() -> Path:
    return _need(REFERENCE_HISTORY, "Gaia reference history")


@pytest.fixture(scope="session")
def reference_bytes(reference_history: Path) -> bytes:
    return reference_history.read_bytes()


@pytest.fixture(scope="session")
def reference_predictions() -> Dict[str, dict]:
    path = _need(REFERENCE_DIR / "predictions.json", "Gaia reference predictions")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def ab_real_1_lowlevel() -> Path:
    return _need(AB_REAL_1 / "lowlevel", "ab-real-1 low-level documents")


@pytest.fixture(scope="session")
def oracle_python() -> str:
    """Path of the oracle venv's python; builds the venv once (a one-off ~1-2 min pip install)."""
    required = os.environ.get("ABRUNNERD_ORACLE") == "required"
    proc = subprocess.run([str(ORACLE_SCRIPT)], cwd=str(REPO), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=1800)
    if proc.returncode != 0:
        message = "Essentia oracle unavailable: tools/essentia-oracle-venv exited %d: %s" % (
            proc.returncode, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no message")
        if required:
            pytest.fail(message + " (ABRUNNERD_ORACLE=required)")
        pytest.skip(message)
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def oracle(oracle_python: str) -> Oracle:
    return Oracle(oracle_python)
