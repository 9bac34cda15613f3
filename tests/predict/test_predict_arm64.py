"""``abrunnerctl predict`` on arm64 (Debian 12's python3-numpy/scipy under qemu) equals amd64.

The root is built once by ``tools/arm64-root`` into /var/cache/abrunnerd-arm64 (~5-8 min,
outside the checkout).  Without it the test skips saying so; ``ABRUNNERD_ARM64=required``
(CI) builds it instead and fails if it cannot.  The project's package, the models and the
documents are copied into the root's /tmp; nothing else of the root is touched.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from predict_paths import AB_REFERENCE, ESSENTIA_REFERENCE, need
from gaia_oracle import SHARED_DATA

REPO = Path(__file__).resolve().parents[2]
ROOT = Path(os.environ.get("ABRUNNERD_ARM64_ROOT", "/var/cache/abrunnerd-arm64"))


@pytest.fixture(scope="module")
def arm64_root() -> Path:
    required = os.environ.get("ABRUNNERD_ARM64") == "required"
    if not (ROOT / ".abrunnerd-complete").exists() and not required:
        pytest.skip("arm64 root not built: run tools/arm64-root (one-off, ~5-8 min; needs root, mmdebstrap, "
                    "qemu-user-static, binfmt-support)")
    proc = subprocess.run([str(REPO / "tools" / "arm64-root")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=3600)
    if proc.returncode != 0:
        message = "tools/arm64-root exited %d: %s" % (proc.returncode, proc.stderr.strip()[-500:])
        if required:
            pytest.fail(message + " (ABRUNNERD_ARM64=required)")
        pytest.skip(message)
    return Path(proc.stdout.strip().splitlines()[-1])


def predict_lines(python, cwd, model, docs, env=None):
    proc = subprocess.run(python + ["-m", "abrunnerd.ctl", "predict", model, docs], cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
                          timeout=1800)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_arm64_predicts_like_amd64(arm64_root):
    cases = [(need(AB_REFERENCE, "Gaia reference history"),
              sorted((SHARED_DATA / "ab-real-1" / "lowlevel").glob("*.json"))),
             (need(ESSENTIA_REFERENCE, "Gaia-script history"),
              sorted((SHARED_DATA / "essentia-real-1").glob("[iv]*/*.json")))]
    work = Path(tempfile.mkdtemp(prefix="abrunnerd-predict-", dir=str(arm64_root / "tmp")))
    try:
        shutil.copytree(str(REPO / "abrunnerd"), str(work / "abrunnerd"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        inside = "/" + str(work.relative_to(arm64_root))
        arch = subprocess.run(["chroot", str(arm64_root), "python3", "-c",
                               "import platform, numpy; print(platform.machine(), numpy.__version__)"],
                              stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.split()
        assert arch[0] == "aarch64"
        total, worst = 0, 0.0
        for i, (history, docs) in enumerate(cases):
            case = work / ("case%d" % i)
            case.mkdir()
            shutil.copy(str(history), str(case / "model.history"))
            for doc in docs:
                shutil.copy(str(doc), str(case / doc.name))
            amd64 = predict_lines([sys.executable], str(case), "model.history", ".",
                                  env=dict(os.environ, PYTHONPATH=str(REPO)))
            arm64 = predict_lines(["chroot", str(arm64_root), "/usr/bin/env", "PYTHONPATH=" + inside,
                                   "python3"], "/", "%s/case%d/model.history" % (inside, i), "%s/case%d" % (inside, i))
            assert len(amd64) == len(arm64) in (180, 90)
            for a, b in zip(amd64, arm64):
                assert os.path.basename(a["input"]) == os.path.basename(b["input"])
                (name, ra), = a["highlevel"].items()
                rb = b["highlevel"][name]
                assert ra["value"] == rb["value"], (a, b)
                worst = max([worst] + [abs(ra["all"][c] - rb["all"][c]) for c in ra["all"]])
            total += len(amd64)
        assert total == 270
        assert worst <= 1e-12, worst
        print("arm64 (numpy %s) vs amd64: %d documents, same classes, max |dp| = %.2g" % (arch[1], total, worst))
    finally:
        shutil.rmtree(str(work), ignore_errors=True)
