#!/usr/bin/env python3
"""Documents per second: ``abrunnerd.gaia.apply`` vs Essentia's GaiaTransform, same documents, same run.

Models: "1 model" = Gaia's own ab-real-1 history (../shared, 3 classes, gaussianized, 672
features, 74 support vectors); "10 models" = that one plus nine trained by abrunnerd on
examples/ab-real-small (one grid point each, every preprocessing x kernel; cached in
.cache/bench-predict-models).  Documents: ab-real-1's 180 AB low-level JSON files, read
``--rounds`` times.

Each side runs in ONE process; rates are documents per CPU-second of that process (= per
core; wall-clock rates on a shared, loaded machine would mostly measure the other tenants):
* ours: read + parse each file, extract, predict in batches of ``--batch``; reported end to
  end (from the files) and for extract + predict alone (documents already parsed);
* Essentia 2.1b6.dev374 in the oracle venv (tools/essentia-oracle-venv): ``YamlInput`` per
  file, then one ``GaiaTransform`` per model created once and reused for every document (the
  fastest way to use it; MusicExtractorSVM does the same), reported end to end and compute only.

    .venv/bin/python benchmarks/predict.py [--rounds 5] [--batch 256] [--json out.json]

The goal (issue 13): >= 1,000 documents/s per core for one model on batched input, and
faster than GaiaTransform per document; the ratios are printed either way.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(REPO), "shared", "data")
REFERENCE = os.path.join(SHARED, "ab-real-1", "gaia-reference", "ab-real-1.history")
sys.path.insert(0, REPO)

ESSENTIA_SIDE = r'''
import json, sys, time
import essentia
for flag in ("infoActive", "warningActive"):
    setattr(essentia.log, flag, False)
import essentia.standard as es
histories, docs, rounds = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
transforms = [es.GaiaTransform(history=h) for h in histories]
load = compute = 0.0
n = 0
for _ in range(rounds):
    for d in docs:
        t0 = time.process_time()
        pool = es.YamlInput(filename=d, format="json")()
        t1 = time.process_time()
        for g in transforms:
            g(pool)
        t2 = time.process_time()
        load += t1 - t0
        compute += t2 - t1
        n += 1
print(json.dumps({"documents": n, "load": load, "compute": compute}))
'''


def trained_models(count: int) -> List[str]:
    """Nine small models of every preprocessing x kernel, trained once and cached."""
    cache = os.path.join(REPO, ".cache", "bench-predict-models")
    os.makedirs(cache, exist_ok=True)
    wanted = [(p, k) for p in ("basic", "lowlevel", "nobands", "normalized", "gaussianized")
              for k in ("RBF", "poly")][:count]
    paths = []
    for preprocessing, kernel in wanted:
        path = os.path.join(cache, "%s-%s.history" % (preprocessing, kernel))
        if not os.path.exists(path):
            from abrunnerd import trainer
            from abrunnerd.gaia.history import read_history, write_history

            base = trainer.load_dataset_dir(os.path.join(REPO, "examples", "ab-real-small"))
            # a name of its own per model (the class name derives from it), so all apply together
            ds = trainer.Dataset(name="bench-%s-%s" % (preprocessing, kernel.lower()), groundtruth=base.groundtruth,
                                 documents=base.documents, artists=base.artists)
            opts = trainer.TrainOptions.from_job_options(
                {"c_values": [3], "gamma_values": [-5], "preprocessing_values": [preprocessing]},
                seed=42, kernels=(kernel,))
            write_history(trainer.train(ds, opts, workers=1).model.steps, path)
            read_history(path)
        paths.append(path)
    return paths


def ours(histories: List[str], docs: List[str], rounds: int, batch: int) -> Dict[str, float]:
    from abrunnerd.documents import Source, load_source
    from abrunnerd.gaia.apply import load_model, predict_many

    models = [load_model(h) for h in histories]
    sources = [Source(d, d, os.path.basename(d)) for d in docs] * rounds
    start = time.process_time()
    parsed_time = 0.0
    n = 0
    for i in range(0, len(sources), batch):
        t0 = time.process_time()
        parsed = [load_source(s) for s in sources[i:i + batch]]
        t1 = time.process_time()
        for results in predict_many(models, parsed):  # as abrunnerctl predict: one read per layout
            assert all(hasattr(r, "value") for r in results), results[0]
        parsed_time += t1 - t0
        n += len(parsed)
    total = time.process_time() - start
    return {"documents": n, "end_to_end": n / total, "apply_only": n / (total - parsed_time)}


def essentia(python: str, histories: List[str], docs: List[str], rounds: int) -> Dict[str, float]:
    out = subprocess.run([python, "-c", ESSENTIA_SIDE, json.dumps(histories), json.dumps(docs), str(rounds)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=7200)
    if out.returncode != 0:
        raise SystemExit("Essentia side failed: %s" % out.stderr[-2000:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"documents": r["documents"], "end_to_end": r["documents"] / (r["load"] + r["compute"]),
            "apply_only": r["documents"] / r["compute"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="times each of the 180 documents is predicted (ours)")
    parser.add_argument("--essentia-rounds", type=int, default=1, help="the same for Essentia (slower)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if not os.path.exists(REFERENCE):
        raise SystemExit("missing %s (Gaia's reference history, read from ../shared)" % REFERENCE)
    docs = sorted(glob.glob(os.path.join(SHARED, "ab-real-1", "lowlevel", "*.json")))
    oracle = subprocess.run([os.path.join(REPO, "tools", "essentia-oracle-venv")], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    python = oracle.stdout.strip().splitlines()[-1] if oracle.returncode == 0 else None
    sets = {"1 model": [REFERENCE], "10 models": [REFERENCE] + trained_models(9)}
    figures = {}  # type: Dict[str, Any]
    print("documents: %d AB low-level files (avg %.0f kB); one process each side; documents per CPU-second; batch %d"
          % (len(docs), sum(os.path.getsize(d) for d in docs) / len(docs) / 1000, args.batch))
    print("%-10s %-12s %14s %14s" % ("models", "side", "end-to-end/s", "apply-only/s"))
    for label, histories in sets.items():
        row = {"ours": ours(histories, docs, args.rounds, args.batch)}
        if python:
            row["essentia"] = essentia(python, histories, docs, args.essentia_rounds)
        for side, r in row.items():
            print("%-10s %-12s %14.0f %14.0f" % (label, side, r["end_to_end"], r["apply_only"]))
        if python:
            ratio = [row["ours"][k] / row["essentia"][k] for k in ("end_to_end", "apply_only")]
            print("%-10s %-12s %13.1fx %13.1fx" % (label, "ratio", ratio[0], ratio[1]))
        figures[label] = row
    if not python:
        print("Essentia side skipped: %s" % (oracle.stderr.strip().splitlines() or ["oracle venv unavailable"])[-1])
    print("load average at the end: %.2f %.2f %.2f" % os.getloadavg())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
