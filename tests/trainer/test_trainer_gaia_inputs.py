"""Gaia's document and list formats read alike: JSON, the .sig YAML json_to_sig writes, paths in filelists.

Small and fast (ab-real-small documents, one configuration): the same documents as
extractor JSON, as Gaia's ``.sig`` YAML and through a groundtruth + filelist (relative
and absolute paths) must give byte-identical results; the inputs are never written.
"""
import json
import os
import shutil

import yaml

from abrunnerd import ctl
from trainer_paths import AB_REAL_SMALL

GRID = ["--preprocessing", "lowlevel", "--c-values", "1", "--gamma-values", "-5", "--jobs", "1"]


def _make(tmp_path, ext):
    """Class folders of 2 x 6 documents, written as .json or as json_to_sig's .sig (yaml.safe_dump)."""
    meta = json.loads((AB_REAL_SMALL / "dataset.json").read_text())
    root = tmp_path / ("classes-" + ext)
    for cls in meta["classes"][:2]:
        (root / cls["name"]).mkdir(parents=True)
        for mbid in cls["recordings"][:6]:
            doc = json.loads((AB_REAL_SMALL / "lowlevel" / (mbid + ".json")).read_text())
            target = root / cls["name"] / (mbid + "." + ext)
            target.write_text(json.dumps(doc) if ext == "json" else yaml.safe_dump(doc))
    return root


def _train(args, out):
    assert ctl.main(["train"] + [str(a) for a in args] + ["--out", str(out)] + GRID) == 0
    return {name: (out / name).read_bytes() for name in ("result.json", "predictions.json", "report.tsv",
                                                        "configurations.jsonl", "demo.history")}


def _snapshot(root):
    return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*"))


def test_json_sig_and_lists_give_identical_results(tmp_path):
    as_json, as_sig = _make(tmp_path, "json"), _make(tmp_path, "sig")
    before = _snapshot(as_json), _snapshot(as_sig)
    a = _train([as_json, "--name", "demo"], tmp_path / "a")
    b = _train([as_sig, "--name", "demo"], tmp_path / "b")
    assert a == b
    gt, fl_rel, fl_abs = {}, {}, {}
    for f in sorted(as_json.glob("*/*.json")):
        gt[f.stem] = f.parent.name
        fl_rel[f.stem] = os.path.relpath(str(f), str(tmp_path / "lists"))
        fl_abs[f.stem] = str(f)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "gt.yaml").write_text(yaml.safe_dump({"type": "singleClass", "version": 1.0,
                                                                "className": "demo", "groundTruth": gt}))
    (tmp_path / "lists" / "rel.yaml").write_text(yaml.safe_dump(fl_rel))
    (tmp_path / "lists" / "abs.yaml").write_text(yaml.safe_dump(fl_abs))
    cwd = os.getcwd()
    os.chdir(str(tmp_path / "a"))  # relative paths are relative to the filelist, not the working directory
    try:
        c = _train(["--groundtruth", tmp_path / "lists" / "gt.yaml", "--filelist", tmp_path / "lists" / "rel.yaml"],
                   tmp_path / "c")
    finally:
        os.chdir(cwd)
    d = _train(["--groundtruth", tmp_path / "lists" / "gt.yaml", "--filelist", tmp_path / "lists" / "abs.yaml"],
               tmp_path / "d")
    assert a == c == d
    assert (_snapshot(as_json), _snapshot(as_sig)) == before  # nothing written into the inputs
    result = json.loads(a["result.json"])
    assert result["parameters"]["model"]["balanceClasses"] in (False, True)
    assert set(json.loads(a["predictions.json"])) == set(gt)  # the original keys


def test_sig_preferred_only_when_no_json(tmp_path):
    """One id as both .json and .sig: one document (the .json), not two."""
    from abrunnerd.trainer.class_folders import find_documents

    root = _make(tmp_path, "json")
    first = sorted(root.glob("*/*.json"))[0]
    shutil.copy(str(first), str(first.with_suffix(".sig")))
    found = find_documents(str(root))
    assert sum(len(v) for v in found.values()) == 12
    assert found[first.parent.name][first.stem].endswith(".json")


def test_project_alone_finds_its_lists_relative_to_itself(tmp_path):
    """``--project`` alone: groundtruth/filelist paths relative to the project file (where Gaia's run_tests runs)."""
    root = _make(tmp_path, "json")
    gt = {f.stem: f.parent.name for f in sorted(root.glob("*/*.json"))}
    fl = {f.stem: os.path.relpath(str(f), str(tmp_path)) for f in sorted(root.glob("*/*.json"))}
    (tmp_path / "gt.yaml").write_text(yaml.safe_dump({"type": "singleClass", "version": 1.0, "className": "x",
                                                      "groundTruth": gt}))
    (tmp_path / "fl.yaml").write_text(yaml.safe_dump(fl))
    project = {"className": "demo", "groundtruth": "gt.yaml", "filelist": "fl.yaml", "seed": 3.0,
               "excludedDescriptors": ["metadata.tags*"], "failOnUnmatched": False,
               "preprocessing": {"ll": [{"transfo": "remove", "params": {"descriptorNames": ["metadata.*"]}},
                                        {"transfo": "select", "params": {"descriptorNames": ["lowlevel.mfcc.mean", "lowlevel.spectral*.mean"]}}]},
               "classifiers": {"svm": [{"preprocessing": ["ll"], "type": ["C-SVC"], "kernel": ["RBF"], "C": [1],
                                        "gamma": [-5], "balanceClasses": [True]}]},
               "evaluations": {"nfoldcrossvalidation": [{"nfold": [3]}]}}
    (tmp_path / "project.yaml").write_text(yaml.safe_dump(project))
    out = tmp_path / "out"
    assert ctl.main(["train", "--project", str(tmp_path / "project.yaml"), "--out", str(out), "--jobs", "1"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["seed"] == 3 and result["parameters"]["evaluation"]["nfold"] == 3
    assert result["parameters"]["model"]["preprocessing"] == "ll" and result["parameters"]["model"]["balanceClasses"]
    assert (out / "demo.history").exists()  # the project's className names the model
