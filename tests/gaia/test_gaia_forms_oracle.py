"""Essentia's GaiaTransform applies models trained from Gaia's class-folder form like we predict.

Models trained by ``abrunnerd.trainer`` from essentia-real-1's class folders (Essentia
2.1-beta6 MusicExtractor JSON, the 2.1-beta5 template) are written as Gaia histories and
applied by essentia 2.1b6.dev374's GaiaTransform (the oracle venv) to every one of the
90 JSON files as stored; class and probabilities must equal our predictions.  Two
models: the best configuration of the full grid (mfcc, RBF, C=2^5, gamma=2^-3) and a
balanceClasses=True gaussianized poly model, which exercises the other appliers.
"""
from pathlib import Path

import pytest

from abrunnerd.gaia.history import write_history
from abrunnerd.trainer import TrainOptions, train
from abrunnerd.trainer.class_folders import load_class_folders
from gaia_oracle import SHARED_DATA

pytestmark = pytest.mark.oracle
ESSENTIA_REAL_1 = SHARED_DATA / "essentia-real-1"
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory):
    for cls in ("instrumental", "voice"):
        if not (ESSENTIA_REAL_1 / cls).is_dir():
            pytest.skip("essentia-real-1 missing: %s (CI provides ../shared beside the clone)" % (ESSENTIA_REAL_1 / cls))
    base = tmp_path_factory.mktemp("classes")
    for cls in ("instrumental", "voice"):
        (base / cls).symlink_to(ESSENTIA_REAL_1 / cls)
    return base


@pytest.mark.parametrize("prep,kernel,c,gamma,balance", [("mfcc", "RBF", 5, -3, False),
                                                        ("gaussianized", "poly", 1, -5, True)])
def test_gaia_transform_equals_our_predictions(tmp_path, class_folders, oracle, prep, kernel, c, gamma, balance):
    ds = load_class_folders(str(class_folders), name="voice_instrumental")
    opts = TrainOptions(seed=1, preprocessing_values=(prep,), kernels=(kernel,), c_values=(c,), gamma_values=(gamma,),
                        balance_classes=(balance,), excluded=("metadata.tags*",))
    res = train(ds, opts, workers=1)
    history = tmp_path / "voice_instrumental.history"
    write_history(res.model.steps, history)
    ours = res.model.predict(ds.documents)
    docs = sorted((ESSENTIA_REAL_1 / cls / (key + ".json")) for key, cls in ds.groundtruth.items())
    pools = oracle.apply(history, docs)
    assert len(pools) == 90
    worst = 0.0
    for path, pool in pools.items():
        got = oracle.svm_output(pool, "highlevel.voice_instrumental")
        want = ours[Path(path).stem]
        assert got["value"] == want["value"], (path, got, want)
        worst = max([worst] + [abs(got["all"][k] - want["all"][k]) for k in want["all"]])
    print("%s %s: 90/90 classes equal, max |p - Essentia's p| = %.2g" % (prep, kernel, worst))
    assert worst <= TOLERANCE
