"""Decompression bombs with a correct SHA-256: the training process refuses them in bounded memory.

The bundle's decompressed size is bounded by what the job announces (its recordings,
times a documented per-recording maximum) and by ``max_memory``; decompression is
streamed with a hard output cap, so a bundle whose header lies about its size stops at
the cap.  Each case runs the real training process on a job directory, as the daemon
does, and reads its exit status, ``error.json`` and stderr.
"""
import json
import lzma
import struct
import subprocess
import sys

import pytest

from abrunnerd.features_bundle import (MAGIC, BundleError, decode_bundle, decode_limit, encode_bundle,
                                       strip_document)
from trainer_paths import AB_REAL_SMALL, REPO

BOMB_MB = 256  # real zeros behind ~40 KB of xz: the old decoder's 4 GiB limit let this through
DATASET_ERROR = 2


@pytest.fixture(scope="module")
def records():
    data = json.loads((AB_REAL_SMALL / "dataset.json").read_text())
    out = []
    for cls in data["classes"][:2]:
        for m in cls["recordings"][:6]:
            doc = json.loads((AB_REAL_SMALL / "lowlevel" / ("%s.json" % m)).read_text())
            out.append((cls["name"], m, strip_document(doc)))
    return out


@pytest.fixture(scope="module")
def bomb_stream():
    """An xz stream of BOMB_MB MiB of zeros (compressed chunk by chunk: little memory here too)."""
    c = lzma.LZMACompressor(preset=0)
    zeros = bytes(16 << 20)
    parts = [c.compress(zeros) for _ in range(BOMB_MB // 16)]
    parts.append(c.flush())
    return b"".join(parts)


def _framed(stream, declared):
    return struct.pack("<4sBBHQ", MAGIC, 1, 1, 0, declared) + stream


def _job_dir(tmp_path, records, bundle, max_memory=None):
    classes = {}
    for cls, m, _doc in records:
        classes.setdefault(cls, []).append(m)
    spec = {"job_id": "j", "seed": 42, "max_workers": 1, "source": "bundle", "max_memory": max_memory,
            "options": {"c_values": [1], "gamma_values": [-3], "preprocessing_values": ["basic"]},
            "dataset": {"name": "x", "classes": [{"name": c, "recordings": r} for c, r in classes.items()]}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "features.bin").write_bytes(bundle)
    return tmp_path


PEAK_WRAPPER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
                "sys.stderr.write('PEAK-KB %d' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")


def _run_worker(job_dir):
    """Exit status, error.json message, stderr, and the training process's own peak RSS in MB
    (measured by a wrapper whose only child it is: pytest's RUSAGE_CHILDREN mixes in earlier tests)."""
    r = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, sys.executable, "-m", "abrunnerd.train_worker",
                        str(job_dir)], cwd=str(job_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=300,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "ABRUNNERD_NICE": "0"})
    stderr, _, peak_kb = r.stderr.rpartition("PEAK-KB ")
    err = job_dir / "error.json"
    message = json.loads(err.read_text())["message"] if err.exists() else ""
    return r.returncode, message, stderr, int(peak_kb) / 1024.0


def test_limit_follows_the_announced_recordings_and_max_memory():
    small, large = decode_limit(10), decode_limit(1000)
    assert small < large
    assert decode_limit(1000, max_memory=64 << 20) == 16 << 20  # a quarter of max_memory
    assert decode_limit(10 ** 9) <= 4 << 30


def test_honest_header_bomb_is_refused_before_decompressing(records, bomb_stream):
    bomb = _framed(bomb_stream, BOMB_MB << 20)
    assert len(bomb) < 100 * 1024
    with pytest.raises(BundleError, match="more than the limit"):
        list(decode_bundle(bomb, max_decompressed=decode_limit(len(records))))


def test_lying_header_bomb_stops_at_the_declared_size(bomb_stream):
    with pytest.raises(BundleError, match="decompression bomb"):
        list(decode_bundle(_framed(bomb_stream, 1 << 20), max_decompressed=decode_limit(12)))


def test_bundle_must_hold_the_announced_recordings(records):
    data = encode_bundle((m, d, None) for _c, m, d in records)
    assert len(list(decode_bundle(data, expected_records=len(records)))) == len(records)
    with pytest.raises(BundleError, match="holds 12 recordings, the job's dataset has 13"):
        list(decode_bundle(data, expected_records=13))


@pytest.mark.parametrize("declared", ["honest", "lying"])
def test_training_process_fails_the_job_with_one_line_in_bounded_memory(tmp_path, records, bomb_stream, declared):
    size = BOMB_MB << 20 if declared == "honest" else 1 << 20
    rc, message, stderr, peak = _run_worker(_job_dir(tmp_path, records, _framed(bomb_stream, size)))
    assert rc == DATASET_ERROR, stderr
    assert message.startswith("features bundle refused: ") and "\n" not in message
    assert stderr.strip() == message, "one clear line, no traceback"
    assert peak < 200, "the training process peaked at %.0f MB decoding a %d MiB bomb" % (peak, BOMB_MB)


def test_max_memory_bounds_an_otherwise_acceptable_bundle(records):
    wide = [(m, dict(d, frames=[float(i) for i in range(30000)]), None) for _c, m, d in records]  # ~1.4 MB
    bundle = encode_bundle(wide)
    assert len(list(decode_bundle(bundle, max_decompressed=decode_limit(len(wide), max_memory=1 << 30)))) == 12
    with pytest.raises(BundleError, match="more than the limit"):
        list(decode_bundle(bundle, max_decompressed=decode_limit(len(wide), max_memory=4 << 20)))
