"""/etc/abserver/abserver.yaml (abserver/settings.py) and the operator-facing CLI output:
safe YAML with every key known and range-checked, the file's values as the commands'
defaults (flags and $ABSERVER_DB win), `abserver jobs` with a header and progress only
for running jobs, `abserver submit --help` naming the grid's defaults and valid names."""
import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from abserver import settings
from helpers.server import EXAMPLE_DATASET, REPO, _env


def run(*args, env=None):
    e = _env()
    e.pop("ABSERVER_DB", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "abserver"] + list(args), capture_output=True, text=True,
                          env=e, cwd=str(REPO), timeout=300)


def test_shipped_file_is_valid_and_all_defaults():
    with open(REPO / "etc" / "abserver" / "abserver.yaml") as f:
        assert settings.parse(f.read(), "abserver.yaml") == {}


@pytest.mark.parametrize("text,expected", [
    ("workrs: 3\n", "line 1: unknown key 'workrs'"),
    ("db: sqlite:////x.db\nping_interval: 0\n", "line 2: ping_interval must be between 1 and 3600"),
    ("timeout: '30'\n", "timeout must be an integer"),
    ("bind: localhost\n", "bind must be HOST:PORT"),
    ("db: /var/lib/abserver/abserver.db\n", "db must be a database URL"),
    ("workers: true\n", "workers must be an integer"),
    ("- a\n- b\n", "expected 'key: value' lines"),
    ("a: [\n", "not valid YAML"),
    ("x: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
])
def test_bad_settings_name_the_file_line_and_key(text, expected):
    with pytest.raises(settings.SettingsError) as info:
        settings.parse(text, "/etc/abserver/abserver.yaml")
    assert str(info.value).startswith("/etc/abserver/abserver.yaml") and expected in str(info.value)


def test_cli_takes_defaults_from_the_file_and_flags_win(tmp_path):
    db = "sqlite:///%s" % (tmp_path / "s.db")
    cfg = tmp_path / "abserver.yaml"
    cfg.write_text("db: %s\n" % db)
    env = {"ABSERVER_CONFIG": str(cfg)}
    assert run("init-db", env=env).returncode == 0
    assert (tmp_path / "s.db").exists()
    assert run("add-user", "alice", env=env).returncode == 0
    other = "sqlite:///%s" % (tmp_path / "other.db")
    r = run("jobs", "--db", other, env=env)  # the flag wins: an empty, uninitialised database
    assert r.returncode == 78 and "init-db" in r.stderr
    cfg.write_text("db: %s\nworkrs: 2\n" % db)
    r = run("jobs", env=env)
    assert r.returncode == 78 and "line 2: unknown key 'workrs'" in r.stderr and "Traceback" not in r.stderr
    r = run("--config", str(tmp_path / "missing.yaml"), "jobs")
    assert r.returncode == 78 and "no such file" in r.stderr


def test_jobs_has_a_header_and_shows_progress_only_while_running(tmp_path):
    db = "sqlite:///%s" % (tmp_path / "j.db")
    env = {"ABSERVER_DB": db}
    run("init-db", env=env)
    run("add-user", "alice", env=env)
    dataset = run("import-dataset", str(EXAMPLE_DATASET), "--owner", "alice", env=env).stdout.strip()
    submitted = run("submit", dataset, "--c-values", "1", "--gamma-values", "1", env=env)
    assert submitted.returncode == 0 and "job queued in" in submitted.stderr
    done_job = submitted.stdout.strip()
    running_job = run("submit", dataset, "--c-values", "1", env=env).stdout.strip()
    engine = sa.create_engine(db)
    ping = json.dumps({"stage": "training", "cells_done": 18262, "cells_total": 19950})
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE jobs SET status='done', progress=:p WHERE id=:j"), {"p": ping, "j": done_job})
        conn.execute(sa.text("UPDATE jobs SET status='running', lease_expires=:t, runner_name='box', "
                             "progress=:p WHERE id=:j"), {"p": ping, "j": running_job, "t": 4e9})
    out = run("jobs", env=env).stdout.splitlines()
    assert out[0].split() == ["JOB", "STATUS", "WHERE", "SUBMITTED", "RUNNER", "PROGRESS"]
    done_line = next(l for l in out if l.startswith(done_job))
    running_line = next(l for l in out if l.startswith(running_job))
    assert "18262" not in done_line and done_line.rstrip().endswith("-")
    assert running_line.rstrip().endswith("training 91% (18262/19950)")


def test_submit_help_documents_the_grid():
    out = run("submit", "--help").stdout
    for text in ("-5 -3 -1 1 3 5 7 9 11", "3 1 -1 -3 -5 -7 -9 -11", "basic lowlevel nobands normalized",
                 "log2 exponents", "default 42"):
        assert text in " ".join(out.split()), text


from hypothesis import given, settings as hsettings, strategies as hs  # noqa: E402


@hsettings(max_examples=300, deadline=None)
@given(hs.one_of(hs.text(max_size=200), hs.dictionaries(hs.sampled_from(sorted(settings.KEYS) + ["x"]), hs.one_of(
    hs.none(), hs.booleans(), hs.integers(-10 ** 12, 10 ** 12), hs.floats(), hs.text(max_size=30)), max_size=6).map(
        lambda d: "\n".join("%s: %s" % (k, json.dumps(v)) for k, v in d.items()))))
def test_hostile_settings_text_gives_a_settings_error_or_checked_values(text):
    """/etc/abserver/abserver.yaml is a local file (hostile input): only SettingsError escapes."""
    try:
        values = settings.parse(text, "abserver.yaml")
    except settings.SettingsError as exc:
        assert str(exc).startswith("abserver.yaml")
        return
    for key, value in values.items():
        spec = settings.KEYS[key]
        assert isinstance(value, spec.kind) and not isinstance(value, bool)
        if spec.low is not None:
            assert spec.low <= value <= spec.high
