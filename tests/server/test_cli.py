"""The admin CLI: what it prints, and a clear message with a sysexits code for each mistake."""
import socket
import subprocess
import sys

from helpers.server import EXAMPLE_DATASET, REPO, _env


def run(*args, db=None):
    cmd = [sys.executable, "-m", "abserver"] + list(args[:1]) + (["--db", db] if db else []) + list(args[1:])
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=str(REPO), timeout=300)


def test_admin_workflow_prints_ids(tmp_path):
    db = "sqlite:///%s" % (tmp_path / "a.db")
    assert "schema at version" in run("init-db", db=db).stdout
    token = run("add-user", "alice", db=db)
    assert token.returncode == 0 and len(token.stdout.strip()) == 64
    assert "shown only now" in token.stderr
    dataset = run("import-dataset", str(EXAMPLE_DATASET), "--owner", "alice", db=db)
    assert dataset.returncode == 0 and "imported 60 low-level documents" in dataset.stderr
    job = run("submit", dataset.stdout.strip(), "--remote", "--c-values", "1", "--artist-filter", "--normalize",
              "--seed", "7", db=db)
    assert job.returncode == 0, job.stderr
    # Every stage of the snapshot build reports how far it came, ending at the dataset's 60 recordings.
    for stage in ("reading documents", "preparing documents", "encoding the features bundle"):
        assert "abserver: %s: 60/60 (100%%)" % stage in job.stderr, job.stderr
    listing = run("jobs", db=db)
    assert job.stdout.strip() in listing.stdout and "pending" in listing.stdout
    assert token.stdout.strip() not in listing.stdout + listing.stderr


def test_mistakes_get_clear_messages(tmp_path):
    db = "sqlite:///%s" % (tmp_path / "b.db")
    r = run("jobs", db=db)
    assert r.returncode == 78 and "init-db" in r.stderr and "Traceback" not in r.stderr
    run("init-db", db=db)
    run("add-user", "alice", db=db)
    cases = [
        (("add-user", "alice"), 65, "already exists"),
        (("add-user", "no spaces"), 65, "letters, digits"),
        (("import-dataset", str(tmp_path / "nowhere"), "--owner", "alice"), 65, "cannot read"),
        (("import-dataset", str(EXAMPLE_DATASET), "--owner", "nobody"), 65, "abserver add-user nobody"),
        (("submit", "00000000-0000-4000-8000-000000000000"), 65, "no dataset"),
    ]
    for args, code, text in cases:
        r = run(*args, db=db)
        assert (r.returncode, text in r.stderr, "Traceback" in r.stderr) == (code, True, False), (args, r.stderr)
    dataset = run("import-dataset", str(EXAMPLE_DATASET), "--owner", "alice", db=db).stdout.strip()
    r = run("submit", dataset, "--preprocessing", "raw", db=db)
    assert r.returncode == 65 and "preprocessing_values" in r.stderr
    r = run("jobs", db="mysql://x/y")
    assert r.returncode == 78 and "sqlite:///PATH" in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run("jobs", db="postgresql://nobody:secret@127.0.0.1:%d/none" % port)
    assert r.returncode == 69 and "database error" in r.stderr and "Traceback" not in r.stderr
    assert "secret" not in r.stderr
    r = run("serve", "--listen", "nonsense", db=db)
    assert r.returncode == 2 and "HOST:PORT" in r.stderr
