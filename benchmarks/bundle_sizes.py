"""Measure candidate encodings of a job's features bundle on a real dataset (docs/protocol.md table).

    .venv/bin/python benchmarks/bundle_sizes.py [DATASET_DIR]   (default ../shared/data/ab-real-1)

Ends with the two forms the server sends: version 2 (only what AB's preprocessing sets
can use; goal >= 10x smaller than the raw JSON, decoded >= 2,000 recordings/s into the
trainer's frame) and the complete version 1, with sizes, ratios and decode rates
measured side by side (CPU time of this process, best of 3).

Prints bytes and the ratio to the raw AcousticBrainz JSON for: JSON lines of the
stripped documents under gzip/xz/zstd, and binary float32 layouts (row-major or
columnar, with or without byte planes) under the same codecs. zstd is measured with
the ``zstd`` command when it is installed (Python's stdlib has no zstd before 3.14).
"""
import bz2
import gzip
import json
import lzma
import shutil
import subprocess
import sys
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abrunnerd.features_bundle import _shuffle, _split, decode_bundle, encode_bundle, strip_document  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ab-real-1"


def zstd(data: bytes, level: int = 19) -> int:
    if not shutil.which("zstd"):
        return -1
    return len(subprocess.run(["zstd", "-q", "-c", "-%d" % level, "--ultra"], input=data, capture_output=True,
                              check=True).stdout)


def codecs(data: bytes):
    return {"gzip -9": len(gzip.compress(data, 9)), "bz2 -9": len(bz2.compress(data, 9)),
            "xz -6": len(lzma.compress(data, preset=6)), "xz -9e": len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)),
            "zstd -19": zstd(data)}


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    files = sorted((root / "lowlevel").glob("*.json"))
    raw = sum(p.stat().st_size for p in files)
    docs = [(p.stem, strip_document(json.loads(p.read_text())), None) for p in files]
    print("dataset %s: %d documents, raw AB JSON %d bytes (%.1f KB per document)"
          % (root.name, len(files), raw, raw / 1024.0 / len(files)))
    rows = []
    lines = "\n".join(json.dumps(d, separators=(",", ":")) for _m, d, _a in docs).encode()
    for name, size in codecs(lines).items():
        rows.append(("JSON lines, stripped", name, size))
    row_major = b"".join(array("f", _floats(d)).tobytes() for _m, d, _a in docs)
    for name, size in codecs(row_major).items():
        rows.append(("float32 row-major (values only)", name, size))
    n = len(docs)
    index = {}
    per_doc = [_floats(d, with_paths=True) for _m, d, _a in docs]
    for floats, paths in per_doc:
        for p in paths:
            index.setdefault(p, len(index))
    cols = array("f", bytes(4 * n * len(index)))
    for i, (floats, paths) in enumerate(per_doc):
        for p, v in zip(paths, floats):
            cols[index[p] * n + i] = v
    for name, size in codecs(cols.tobytes()).items():
        rows.append(("float32 columnar (values only)", name, size))
    for name, size in codecs(_shuffle(cols.tobytes())).items():
        rows.append(("float32 columnar + byte planes (values only)", name, size))
    used = [index[p] for p in index if not _unused(p)]
    kept = b"".join(cols[c * n:(c + 1) * n].tobytes() for c in used)
    rows.append(("info: columnar + planes, only descriptors some preprocessing uses", "xz -6",
                 len(lzma.compress(_shuffle(kept), preset=6))))
    from abrunnerd.trainer.bundle import dataset_from_bundle, encode_for_job

    groundtruth = {m: "c%d" % (i % 2) for i, (m, _d, _a) in enumerate(docs)}
    start = time.process_time()
    bundle = encode_bundle(docs)
    enc = time.process_time() - start
    start = time.process_time()
    reduced = encode_for_job(docs, {})  # AB's default job options
    enc2 = time.process_time() - start
    dec = _best_of(3, lambda: list(decode_bundle(bundle)))
    dec2 = _best_of(3, lambda: dataset_from_bundle(reduced, "x", groundtruth))
    rows.append(("SENT, complete form: v1 (documents)", "xz -6", len(bundle)))
    rows.append(("SENT, AB's preprocessing sets: v2 (training columns)", "xz -6", len(reduced)))
    print("%-54s %-9s %10s %8s" % ("layout", "codec", "bytes", "raw/x"))
    for layout, codec, size in rows:
        if size > 0:
            print("%-54s %-9s %10d %8.2f" % (layout, codec, size, raw / float(size)))
    print("v1 complete: encode %.2f CPU-s, decode %.3f CPU-s = %.0f recordings/s" % (enc, dec, n / dec))
    print("v2 reduced:  encode %.2f CPU-s, decode %.3f CPU-s = %.0f recordings/s (into the trainer's frame)"
          % (enc2, dec2, n / dec2))
    ratio = raw / float(len(reduced))
    print("goals: v2 >= 10x smaller than the raw JSON: %.1fx %s; decode >= 2,000 recordings/s: %.0f %s" % (
        ratio, "met" if ratio >= 10 else "NOT met", n / dec2, "met" if n / dec2 >= 2000 else "NOT met"))


def _best_of(times, fn) -> float:
    best = None
    for _ in range(times):
        start = time.process_time()
        fn()
        spent = time.process_time() - start
        best = spent if best is None else min(best, spent)
    return best


def _unused(path) -> bool:
    """AB template's unusedDescs (metadata.*, *dmean*, *dvar*, *.min, *.max, *cov, tonal.thpcp, ...)."""
    keys = [k for k in path if isinstance(k, str)]
    name = ".".join(keys)
    return (keys[0] == "metadata" or "dmean" in name or "dvar" in name or keys[-1] in ("min", "max")
            or keys[-1].endswith("cov") or name == "tonal.thpcp"
            or name.startswith("lowlevel.spectral_energyband_high.") or name.startswith("lowlevel.silence_rate"))


def _floats(doc, with_paths=False):
    floats, others, paths = [], [], []
    _split(doc, floats, others, paths, ())
    return (floats, paths) if with_paths else floats


if __name__ == "__main__":
    main()
