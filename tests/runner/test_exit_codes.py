"""The exit-code table (abrunnerd/exitcodes.py) against the man pages, the docs and the
code, and the messages after a user's mistake: each names the fix and exits with the
documented status. Real processes, real files, a real unprivileged user (nobody)."""
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from abrunnerd import config, exitcodes as ec, runner
from abrunnerd.gaia import cli as gaia_cli
from abrunnerd.trainer import cli as trainer_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=ROOT, ABRUNNERD_DBUS_ADDRESS="unix:path=/nonexistent/bus")


def test_man_pages_exit_sections_are_the_table():
    for prog, page in (("abrunnerd", "man/abrunnerd.8"), ("abrunnerctl", "man/abrunnerctl.1")):
        with open(os.path.join(ROOT, page)) as f:
            text = f.read()
        begin, end = ec.MAN_BEGIN % prog, ec.MAN_END
        assert begin in text and end in text, "%s has no generated EXIT STATUS section" % page
        body = text[text.index(begin) + len(begin) + 1:text.index(end)]
        assert body == ec.man_section(prog), "regenerate: python3 -m abrunnerd.exitcodes man %s" % prog
        documented = set(int(c) for c in re.findall(r"^\.B (\d+)$", body, re.M))
        assert documented == {e.code for e in ec.codes_for(prog)}


def test_docs_table_is_the_table():
    with open(os.path.join(ROOT, "docs", "runner.md")) as f:
        text = f.read()
    body = text[text.index("<!-- BEGIN exit codes -->") + 26:text.index("<!-- END exit codes -->")]
    assert body == ec.markdown_table(), "regenerate: python3 -m abrunnerd.exitcodes markdown"


def test_the_codes_constants_are_the_tables():
    assert config.EX_CONFIG == ec.CONFIG and runner.EX_NOPERM == ec.NOPERM
    assert trainer_cli.EX_DATAERR == ec.DATAERR and trainer_cli.EX_INTERRUPTED == ec.INTERRUPTED
    assert (gaia_cli.EX_DATAERR, gaia_cli.EX_NOINPUT) == (ec.DATAERR, ec.NOINPUT)
    known = {e.code for e in ec.TABLE}
    # every literal exit status the front ends return or raise is in the table
    for mod in ("daemon.py", "ctl.py", "ctl_runner.py", "runner/loop.py", "runner/retry.py", "trainer/cli.py",
                "gaia/cli.py", "gaia/predict_cli.py"):
        with open(os.path.join(ROOT, "abrunnerd", mod)) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.startswith("EX_")
                                                    for t in node.targets):
                values = [n.value for n in ast.walk(node.value) if isinstance(n, ast.Constant)
                          and isinstance(n.value, int)]
                assert set(values) <= known, (mod, values)
            if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, int) and not isinstance(node.value.value, bool):
                assert node.value.value in known, (mod, node.lineno, node.value.value)


def _setup(tmp: str, token_mode: int = None, token_owner: str = "root", config_extra: str = "") -> str:
    cfg = os.path.join(tmp, "abrunnerd.yaml")
    token = os.path.join(tmp, "token")
    with open(cfg, "w") as f:
        f.write("server_url: http://127.0.0.1:9\ntoken_file: %s\nwork_dir: %s\ndbus_bus: none\n%s"
                % (token, os.path.join(tmp, "work"), config_extra))
    if token_mode is not None:
        with open(token, "w") as f:
            f.write("t" * 32 + "\n")
        os.chmod(token, token_mode)
        shutil.chown(token, token_owner, token_owner if token_owner != "nobody" else "nogroup")
    return cfg


def _run(args, user=None):
    cmd = [sys.executable] + args
    if user:
        if os.geteuid() != 0 or not shutil.which("runuser"):
            pytest.skip("needs root and runuser to act as an unprivileged user")
        cmd = ["runuser", "-u", user, "--"] + cmd
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=ENV, timeout=60)


@pytest.fixture
def world_tmp():
    """A directory an unprivileged user may enter (pytest's tmp_path is 0700 root)."""
    d = tempfile.mkdtemp(prefix="abr-exit-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_world_readable_token_is_a_token_problem_with_the_fix(world_tmp):
    cfg = _setup(world_tmp, token_mode=0o644)
    r = _run(["-m", "abrunnerd.daemon", "--check-config", "--config", cfg])
    assert r.returncode == ec.CONFIG, r.stderr
    assert r.stderr.startswith("abrunnerd: token problem:") and "configuration error" not in r.stderr
    assert "chmod 0640" in r.stderr


def test_root_only_token_names_the_chown_for_the_daemon_user(world_tmp):
    cfg = _setup(world_tmp, token_mode=0o600)
    os.chmod(cfg, 0o644)
    os.mkdir(os.path.join(world_tmp, "work"))
    shutil.chown(os.path.join(world_tmp, "work"), "nobody")  # the daemon user's own work_dir
    r = _run(["-m", "abrunnerd.daemon", "--check-config", "--config", cfg], user="nobody")
    assert r.returncode == ec.CONFIG, r.stderr
    assert "token problem" in r.stderr and "chown root:abrunner" in r.stderr and "chmod 0640" in r.stderr, r.stderr


def test_daemon_start_with_a_typo_says_restart(world_tmp):
    cfg = _setup(world_tmp, config_extra="pol_interval: 5\n")
    r = _run(["-m", "abrunnerd.daemon", "--config", cfg])
    assert r.returncode == ec.CONFIG
    assert "pol_interval" in r.stderr and "systemctl restart abrunnerd" in r.stderr, r.stderr


def test_check_config_ok_says_so(world_tmp):
    cfg = _setup(world_tmp, token_mode=0o600)
    r = _run(["-m", "abrunnerd.daemon", "--check-config", "--config", cfg])
    assert r.returncode == 0 and "is valid" in r.stdout, r.stderr


def test_nonroot_jobs_needs_root_or_group(world_tmp):
    cfg = _setup(world_tmp, token_mode=0o600)
    os.chmod(cfg, 0o600)  # like /etc/abrunnerd (0750 root:abrunner) for a user outside the group
    r = _run(["-m", "abrunnerd.ctl", "jobs", "--config", cfg], user="nobody")
    assert r.returncode == ec.NOPERM, r.stderr
    assert "needs root or group abrunner" in r.stderr and "adduser" in r.stderr
    assert "configuration error" not in r.stderr


def test_no_token_with_the_shipped_server_url_says_so(world_tmp):
    cfg = _setup(world_tmp)
    with open(cfg) as f:
        text = f.read().replace("http://127.0.0.1:9", "https://jobs.example.org")
    with open(cfg, "w") as f:
        f.write(text)
    r = _run(["-m", "abrunnerd.ctl", "jobs", "--config", cfg])
    assert r.returncode == ec.CONFIG
    assert "no token" in r.stderr and "still the shipped example" in r.stderr, r.stderr


def test_status_without_a_daemon_points_at_systemctl_and_journalctl(world_tmp):
    cfg = _setup(world_tmp)
    r = _run(["-m", "abrunnerd.ctl", "status", "--config", cfg])
    assert r.returncode == ec.UNAVAILABLE
    assert "systemctl status abrunnerd" in r.stderr and "journalctl -u abrunnerd" in r.stderr, r.stderr
