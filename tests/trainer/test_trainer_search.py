"""The whole search on the bundled 60-recording slice of ab-real-1 (reduced grids), API behaviour."""
import copy
import json

import pytest

from abrunnerd.trainer import (Dataset, DatasetError, OptionsError, TrainingStopped, TrainOptions, estimate_peak_memory,
                               evaluate_cells, train)
from trainer_synth import doc

SMALL_GRID = {"c_values": [1, 5], "gamma_values": [-5, -9]}


def _opts(**kw):
    options = dict(SMALL_GRID)
    options.update(kw)
    return TrainOptions.from_job_options(options, seed=42)


@pytest.fixture(scope="module")
def small_result(small_dataset):
    return train(small_dataset, _opts(), workers=1)


def test_result_json_shape_and_consistency(small_dataset, small_result):
    j = small_result.to_result_json()
    assert set(j) == {"parameters", "accuracy", "confusion_matrix", "seed", "combinations", "dataset"}
    model = j["parameters"]["model"]
    assert model["classifier"] == "svm" and model["type"] == "C-SVC" and model["kernel"] in ("poly", "RBF")
    assert j["parameters"]["evaluation"] == {"type": "nfoldcrossvalidation", "nfold": 5}
    assert len(j["combinations"]) == 5 * 2 * 2 * 2
    cm = j["confusion_matrix"]
    assert sum(v for row in cm.values() for v in row.values()) == 60
    assert all(v > 0 for row in cm.values() for v in row.values())  # AB keeps only non-zero cells
    correct = sum(row.get(cls, 0) for cls, row in cm.items())
    assert j["accuracy"] == round(100.0 * correct / 60, 2)
    assert j["accuracy"] == max(c["accuracy"] for c in j["combinations"])
    for c in j["combinations"]:
        assert c["status"] == "ok" and c["error"] is None and sum(c["fold_total"]) == 60
        assert c["accuracy"] == round(100.0 * sum(c["fold_correct"]) / 60, 2)
    assert j["dataset"] == {"n_recordings": 60, "descriptors_dropped": 0, "template": "2.1-beta2"}
    json.dumps(j)  # serialisable


def test_final_model_steps_have_abs_chain_shape(small_result):
    steps = small_result.model.steps
    names = [s.analyzer for s in steps]
    assert names[:2] == ["remove", "fixlength"]
    assert names[-6:] == ["select", "cleaner", "normalize", "addfield", "svmtrain", "select"]
    assert all(d.length_type == 1 for d in steps[0].input_layout.descriptors)
    for k in range(2, len(steps) - 1):  # each layout is the previous step's output
        assert all(d.length_type == 0 for d in steps[k].input_layout.descriptors if not d.name.startswith(".highlevel"))
    svm = steps[-2]
    assert svm.params["className"] == small_result.model.class_name == "highlevel.ab-real-small"
    assert list(svm.params["classMapping"]) == ["electronic", "orchestral", "speech"]
    assert svm.params["probability"] is True
    model = svm.params["modelData"]
    assert model.prob_a is not None and sum(model.n_support) == model.support_vectors.shape[0]
    assert model.support_vectors.shape[1] == sum(
        svm.input_layout.get(n).size for n in svm.params["descriptorNames"])
    assert steps[-4].analyzer_params == {"independent": True}


def test_predictions_survive_the_history_round_trip(small_dataset, small_result):
    from abrunnerd.gaia import history
    from abrunnerd.trainer.model import predict_document

    docs = dict(list(sorted(small_dataset.documents.items()))[:12])
    ours = small_result.model.predict(docs)
    steps = history.loads_history(history.dumps_history(small_result.model.steps))
    for mbid, d in docs.items():
        again = predict_document(steps, d, mbid)
        assert again["value"] == ours[mbid]["value"]
        assert max(abs(again["all"][c] - ours[mbid]["all"][c]) for c in again["all"]) < 1e-9
        assert abs(sum(ours[mbid]["all"].values()) - 1) < 1e-6


def test_workers_give_the_same_result(small_dataset, small_result):
    other = train(small_dataset, _opts(), workers=2, pool="always")
    assert other.to_result_json() == small_result.to_result_json()


def test_stop_checkpoint_resume_is_identical(small_dataset, small_result, tmp_path):
    log = tmp_path / "cells.jsonl"
    seen = []

    def stop_after_50():
        return len(seen) >= 50

    with pytest.raises(TrainingStopped):
        train(small_dataset, _opts(), workers=1, checkpoint_path=str(log), progress=seen.append,
              should_stop=stop_after_50)
    lines = log.read_bytes().splitlines()
    assert 45 <= len(lines) - 1 <= 60
    with open(log, "ab") as f:
        f.write(b'{"p": "basic", "k": "RB')  # a torn record, as after a crash mid-write
    progress = []
    resumed = train(small_dataset, _opts(), workers=1, checkpoint_path=str(log), progress=progress.append)
    assert resumed.to_result_json() == small_result.to_result_json()
    first_training = next(p for p in progress if p.stage == "training")
    assert first_training.cells_done == len(lines) - 1 and first_training.eta_seconds is None
    training = [p for p in progress if p.stage == "training"]
    assert [p.cells_done for p in training] == sorted(p.cells_done for p in training)
    assert training[-1].cells_done == training[-1].cells_total == 200
    assert any(p.eta_seconds is not None for p in training)
    assert [p.stage for p in progress][-2:] == ["final", "done"]
    # a finished log replays without training anything
    again = []
    train(small_dataset, _opts(), workers=1, checkpoint_path=str(log), progress=again.append)
    assert [p.cells_done for p in again if p.stage == "training"] == [200]


def test_checkpoint_of_other_options_is_set_aside(small_dataset, tmp_path):
    log = tmp_path / "cells.jsonl"
    opts = _opts(preprocessing_values=["lowlevel"])
    train(small_dataset, opts, workers=1, checkpoint_path=str(log))
    other = TrainOptions.from_job_options(dict(SMALL_GRID, preprocessing_values=["lowlevel"]), seed=7)
    progress = []
    train(small_dataset, other, workers=1, checkpoint_path=str(log), progress=progress.append)
    assert (tmp_path / "cells.jsonl.stale").exists()
    assert next(p for p in progress if p.stage == "training").cells_done == 0


def test_evaluate_cells_matches_the_table(small_dataset, small_result):
    j = small_result.to_result_json()
    picks = [j["combinations"][i] for i in (0, 7, 21, 38)]
    cells = [({k: c[k] for k in ("preprocessing", "kernel", "C", "gamma")}, f) for c in picks for f in (0, 3)]
    got = evaluate_cells(small_dataset, _opts(), cells)
    assert got == [(c["fold_correct"][f], c["fold_total"][f]) for c in picks for f in (0, 3)]


def test_artist_filter_and_normalize_options(small_dataset):
    res = train(small_dataset, _opts(preprocessing_values=["lowlevel"], filter_type="artist"), workers=1)
    assert res.to_result_json()["dataset"]["n_recordings"] == 60
    unbalanced = copy.copy(small_dataset)
    gt = dict(small_dataset.groundtruth)
    for mbid in sorted(m for m in gt if gt[m] == "speech")[:8]:
        del gt[mbid]
    unbalanced = Dataset(small_dataset.name, gt, small_dataset.documents, small_dataset.artists)
    res = train(unbalanced, _opts(preprocessing_values=["lowlevel"], normalize=True), workers=1)
    assert res.to_result_json()["dataset"]["n_recordings"] == 36 and len(res.held_out) == 16


# --- errors ---

def _tiny_dataset(n_per_class=6, classes=("x", "y"), chord=None):
    docs, gt = {}, {}
    for ci, cls in enumerate(classes):
        for i in range(n_per_class):
            mbid = "%s%02d" % (cls, i)
            d = doc(1.0 + ci + 0.1 * i, [1.0 + i, 2.0 * ci + i * 0.3], key="CD"[i % 2], spread=0.05 * i + ci)
            if chord is not None:
                d["tonal"]["chords_histogram"] = [1.0 if mbid == chord else 0.0, 1.0 + 0.1 * i]
            docs[mbid] = d
            gt[mbid] = cls
    return Dataset("tiny", gt, docs, {})


def test_failed_configurations_are_recorded_and_the_job_survives():
    ds = _tiny_dataset(chord="x00")  # a chord bin used by one recording: constant in some training folds
    res = train(ds, _opts(preprocessing_values=["basic", "lowlevel"]), workers=1)
    combos = res.to_result_json()["combinations"]
    basic = [c for c in combos if c["preprocessing"] == "basic"]
    assert all(c["status"] == "failed" and c["accuracy"] is None for c in basic)
    assert "tonal.chords_histogram" in basic[0]["error"] and "constant" in basic[0]["error"]
    assert None in basic[0]["fold_correct"]
    assert all(c["status"] == "ok" for c in combos if c["preprocessing"] == "lowlevel")
    assert res.best.preprocessing == "lowlevel"
    with pytest.raises(DatasetError, match="no configuration could be trained"):
        train(ds, _opts(preprocessing_values=["basic"]), workers=1)


@pytest.mark.parametrize("change, words", [
    (lambda ds: ds.groundtruth.update({"y00": "z"}), "class 'z' has only 1 recording (y00)"),
    (lambda ds: ds.groundtruth.update({m: "x" for m in ds.groundtruth}), "at least 2 classes"),
    (lambda ds: ds.documents.pop("x03"), "recording x03 (class 'x') has no low-level document"),
    (lambda ds: ds.documents["y02"]["rhythm"].update(bpm=float("nan")), "recording y02: descriptor rhythm.bpm"),
    (lambda ds: ds.documents["y02"]["tonal"].pop("key_scale"), "tonal.key_scale"),
])
def test_bad_datasets_get_clear_errors(change, words):
    ds = _tiny_dataset()
    change(ds)
    with pytest.raises(DatasetError) as e:
        train(ds, _opts(preprocessing_values=["basic"]), workers=1)
    assert words in str(e.value)


@pytest.mark.parametrize("options, words", [
    ({"c_values": [1.5]}, "c_values"), ({"gamma_values": []}, "gamma_values"), ({"colour": 1}, "unknown job option"),
    ({"preprocessing_values": ["raw"]}, "unknown preprocessing 'raw'"), ({"filter_type": "album"}, "filter_type"),
    ({"normalize": "yes"}, "normalize"), (["c_values"], "job options must be a JSON object")])
def test_bad_options_get_clear_errors(options, words):
    with pytest.raises(OptionsError) as e:
        TrainOptions.from_job_options(options)
    assert words in str(e.value)


def test_memory_formula_fits_5000_recordings_in_4_gb(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)  # train() never runs more workers than CPUs; nor does the estimate
    opts = TrainOptions()
    assert estimate_peak_memory(5000, opts, workers=2) < 4 * 1024 ** 3
    assert estimate_peak_memory(5000, opts, workers=2) > estimate_peak_memory(5000, opts, workers=1)
    assert estimate_peak_memory(2000, opts) < estimate_peak_memory(5000, opts)


MB = 1024 ** 2
# Peak RSS of all processes measured with benchmarks/train_grid.py --memory N --budget-mb B (docs/trainer.md's
# calibration table): (recordings, job options, workers, kernel budget MB, measured MB).  The formula may
# over-estimate a little (it decides whether a job is refused), never under-estimate.
MEASURED_PEAKS = [
    (1000, {"c_values": [11], "gamma_values": [-11], "preprocessing_values": ["gaussianized"]}, 1, 2048, 147),
    (2000, {"c_values": [11], "gamma_values": [-11], "preprocessing_values": ["gaussianized"]}, 1, 2048, 258),
    (5000, {"c_values": [11], "gamma_values": [-11], "preprocessing_values": ["gaussianized"]}, 1, 2048, 553),
    (2000, {"preprocessing_values": ["basic"]}, 1, 2048, 249),
    (10000, {"c_values": [11], "gamma_values": [-11], "preprocessing_values": ["gaussianized"]}, 1, 2048, 1525),
    (2000, {"c_values": [1, 5, 9], "gamma_values": [-9, -5, -1], "preprocessing_values": ["basic"]}, 2, 2048, 461),
    (5000, {"c_values": [1, 5, 9], "gamma_values": [-9, -5, -1], "preprocessing_values": ["basic"]}, 2, 2048, 1160),
    (2000, {"preprocessing_values": ["basic"]}, 1, 40, 195),  # below one unit's kernels: libsvm's cache
    (10000, {}, 1, 2048, 1725),  # AB's whole grid, one unit at a time in one process (two runs: 1,713, 1,725)
]


@pytest.mark.parametrize("n, options, workers, budget_mb, measured_mb", MEASURED_PEAKS)
def test_memory_formula_is_calibrated_on_measured_peaks(monkeypatch, n, options, workers, budget_mb, measured_mb):
    monkeypatch.setattr("os.cpu_count", lambda: 2)  # the machine the peaks were measured on
    estimate = estimate_peak_memory(n, TrainOptions.from_job_options(options, seed=42), workers=workers,
                                    memory_budget=budget_mb * MB) / MB
    assert measured_mb <= estimate <= 1.15 * measured_mb, "estimate %.0f MB vs %d MB measured" % (estimate,
                                                                                                    measured_mb)


def test_cost_estimate_keeps_small_grids_in_process():
    from abrunnerd.trainer.grid import useful_workers

    assert useful_workers(2, 180, 5, 5, 5) == 1  # one configuration on ab-real-1's size
    assert useful_workers(2, 180, 3600, 25, 5) == 1  # AB's grid on 180 recordings: starting workers costs more
    assert useful_workers(2, 2000, 3600, 25, 5) == 2  # 2,000 recordings: worth it
    assert useful_workers(8, 2000, 3600, 25, 5) <= 8
    assert useful_workers(64, 5000, 10, 1, 5) == 1, "never more processes than units"


def test_memory_budget_plans_units():
    from abrunnerd.trainer.memory import plan_units, unit_kernel_bytes

    k = unit_kernel_bytes(10000, 5)
    assert 16 * 8000 * 10000 <= k < 16 * 8100 * 10000
    assert plan_units(10000, 5, 2, 3 * k) == (2, "precomputed", 100.0, k)
    assert plan_units(10000, 5, 2, k + 1).concurrent == 1, "two units' kernels do not fit: one at a time"
    fallback = plan_units(10000, 5, 2, k // 2)
    assert fallback.mode == "libsvm" and fallback.concurrent == 2 and fallback.cache_mb == k // 4 / 1024.0 ** 2
    opts = TrainOptions(seed=42)
    assert estimate_peak_memory(10000, opts, workers=2, memory_budget=k // 2) < estimate_peak_memory(
        10000, opts, workers=2, memory_budget=3 * k)


def test_budgeted_path_gives_the_unbudgeted_results(small_dataset, small_result):
    """Over budget, libsvm computes its own kernel rows in its cache: the same cells, the same best."""
    tight = train(small_dataset, _opts(), workers=1, memory_budget=1)
    assert tight.to_result_json() == small_result.to_result_json()
