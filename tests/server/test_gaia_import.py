"""``abserver import-dataset`` on Gaia users' forms: class folders and groundtruth + filelist.

Keys that are not MBIDs (file stems such as ``track-01``) get the owner's deterministic
uuid5 (datasets.document_id) and are kept as the document's name; re-importing lands on
the same ids; a key that is a UUID is the recording's MBID; bad inputs get one line.
"""
import json
import shutil
import subprocess
import sys

import sqlalchemy as sa

from abserver.datasets import document_id
from helpers.server import EXAMPLE_DATASET, REPO, _env


def run(*args, db=None):
    cmd = [sys.executable, "-m", "abserver"] + list(args[:1]) + (["--db", db] if db else []) + list(args[1:])
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=str(REPO), timeout=300)


def _class_folders(tmp_path, uuid_stems):
    meta = json.loads((EXAMPLE_DATASET / "dataset.json").read_text())
    root = tmp_path / "classes"
    gt, fl = {}, {}
    for cls in meta["classes"][:2]:
        (root / cls["name"]).mkdir(parents=True)
        for i, mbid in enumerate(cls["recordings"][:3]):
            stem = mbid if uuid_stems else "%s-track-%02d" % (cls["name"], i)
            shutil.copy(str(EXAMPLE_DATASET / "lowlevel" / (mbid + ".json")), str(root / cls["name"] / (stem + ".json")))
            gt[stem] = cls["name"]
            fl[stem] = "classes/%s/%s.json" % (cls["name"], stem)
    return root, gt, fl


def _setup(tmp_path):
    db = "sqlite:///%s" % (tmp_path / "g.db")
    run("init-db", db=db)
    assert run("add-user", "alice", db=db).returncode == 0
    return db


def test_class_folders_without_mbids_get_owner_uuid5_ids(tmp_path):
    db = _setup(tmp_path)
    root, gt, _ = _class_folders(tmp_path, uuid_stems=False)
    r = run("import-dataset", str(root), "--owner", "alice", "--name", "demo", "--verbose", db=db)
    assert r.returncode == 0, r.stderr
    assert "imported 6 low-level documents" in r.stderr and "(orchestral-track-00)" in r.stderr
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        owner = conn.execute(sa.text("select id from users where name = 'alice'")).scalar()
        rows = dict(conn.execute(sa.text("select mbid, name from lowlevel where owner_id = :o"), {"o": owner}).fetchall())
        classes = json.loads(conn.execute(sa.text("select classes from datasets where id = :d"),
                                          {"d": r.stdout.strip()}).scalar())
    assert rows == {document_id(owner, key): key for key in gt}
    assert {c["name"]: sorted(c["recordings"]) for c in classes} == {
        cls: sorted(document_id(owner, k) for k, v in gt.items() if v == cls) for cls in set(gt.values())}
    again = run("import-dataset", str(root), "--owner", "alice", "--name", "demo", db=db)
    assert again.returncode == 0 and "6 unchanged" in again.stderr  # same keys, same ids


def test_groundtruth_and_filelist_with_mbid_keys(tmp_path):
    import yaml

    db = _setup(tmp_path)
    root, gt, fl = _class_folders(tmp_path, uuid_stems=True)
    (tmp_path / "gt.yaml").write_text(yaml.safe_dump({"type": "singleClass", "version": 1.0, "className": "demo",
                                                      "groundTruth": gt}))
    (tmp_path / "fl.yaml").write_text(yaml.safe_dump(fl))
    r = run("import-dataset", "--groundtruth", str(tmp_path / "gt.yaml"), "--filelist", str(tmp_path / "fl.yaml"),
            "--owner", "alice", db=db)
    assert r.returncode == 0, r.stderr
    with sa.create_engine(db).connect() as conn:
        rows = dict(conn.execute(sa.text("select mbid, name from lowlevel")).fetchall())
        name = conn.execute(sa.text("select name from datasets")).scalar()
    assert rows == {k: None for k in gt} and name == "demo"


def test_bad_gaia_inputs_get_one_line(tmp_path):
    db = _setup(tmp_path)
    root, gt, fl = _class_folders(tmp_path, uuid_stems=False)
    (tmp_path / "gt.yaml").write_text("- not\n- a mapping\n")
    (tmp_path / "fl.yaml").write_text(json.dumps(fl))
    one = sorted((root / "orchestral").iterdir())
    for f in one[1:]:
        f.unlink()
    cases = [
        (("--groundtruth", str(tmp_path / "gt.yaml"), "--filelist", str(tmp_path / "fl.yaml")), "must be a mapping"),
        ((str(root),), "fewer than 2 recordings"),
        (("--groundtruth", str(tmp_path / "gt.yaml")), "go together"),
    ]
    for args, text in cases:
        r = run("import-dataset", *args, "--owner", "alice", db=db)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 65 and len(lines) == 1 and text in lines[0] and "Traceback" not in r.stderr, r.stderr
