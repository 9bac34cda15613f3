"""``abrunnerctl train`` end to end in a subprocess, and the prediction replay's errors."""
import json
import os
import subprocess
import sys

import pytest

from abrunnerd.trainer import PredictionError
from trainer_paths import AB_REAL_SMALL, REPO


def _ctl(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "abrunnerd.ctl"] + list(args), env=env, cwd=str(REPO),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)


def test_train_writes_result_predictions_and_history(tmp_path):
    out = tmp_path / "out"
    proc = _ctl("train", str(AB_REAL_SMALL), "--out", str(out), "--jobs", "1", "--c-values", "1", "5",
                "--gamma-values", "-5", "--preprocessing", "lowlevel", "normalized")
    assert proc.returncode == 0, proc.stderr
    assert "best: " in proc.stdout and "accuracy" in proc.stdout
    lines = proc.stderr.splitlines()  # not a TTY: plain lines, no carriage returns
    assert lines[0].startswith("preparing:") and lines[-1].startswith("done: 40/40 cells")
    assert "\r" not in proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert len(result["combinations"]) == 2 * 2 * 2 * 1
    predictions = json.loads((out / "predictions.json").read_text())
    assert len(predictions) == 60 and all(set(p) == {"value", "all"} for p in predictions.values())
    history = out / "ab-real-small.history"
    if history.exists():  # written whenever abrunnerd.gaia.history is installed
        assert history.read_bytes()[:4] == b"\x6a\xea\x72\x3d"


def test_train_reports_bad_input_in_one_line(tmp_path):
    proc = _ctl("train", str(tmp_path), "--out", str(tmp_path / "o"))
    assert proc.returncode == 65
    assert proc.stderr.strip().startswith("abrunnerctl train: missing file") and "dataset.json" in proc.stderr
    proc = _ctl("train", str(AB_REAL_SMALL), "--out", str(tmp_path / "o"), "--preprocessing", "bogus")
    assert proc.returncode == 65 and "unknown preprocessing 'bogus'" in proc.stderr


def test_prediction_names_missing_and_resized_descriptors(small_dataset):
    from abrunnerd.trainer import TrainOptions, train

    res = train(small_dataset, TrainOptions(c_values=(1,), gamma_values=(-5,), preprocessing_values=("lowlevel",),
                                            kernels=("RBF",)), workers=1)
    mbid, doc = sorted(small_dataset.documents.items())[0]
    broken = json.loads(json.dumps(doc))
    del broken["lowlevel"]["mfcc"]["mean"]
    with pytest.raises(PredictionError, match="recording %s: descriptor lowlevel.mfcc.mean is missing" % mbid):
        res.model.predict({mbid: broken})
    broken = json.loads(json.dumps(doc))
    broken["lowlevel"]["mfcc"]["mean"] = broken["lowlevel"]["mfcc"]["mean"][:5]
    with pytest.raises(PredictionError, match="lowlevel.mfcc.mean has 5 values, the model was trained on 13"):
        res.model.predict({mbid: broken})
