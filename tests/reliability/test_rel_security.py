"""Security of the runner's outputs, on the real daemon: what it prints on bad setups,
what it publishes on D-Bus and sends in status pings, and that none of it holds the token.

The final, suite-wide grep over every captured output is ``test_rel_zz_token_grep``.
"""
import shutil
import sqlite3
import subprocess
import time

import pytest

from rel_harness import leaks, record
from rel_harness.daemon import Daemon
from rel_harness.jobwatch import comparable, local_state, server_job
from rel_harness.procs import wait_for
from rel_harness.record import captures_dir
from rel_harness.server import AbServer

GRID = ["--c-values", "-1", "1", "3", "--gamma-values", "-5", "-3", "--preprocessing", "basic", "normalized"]


@pytest.fixture
def srv(tmp_path):
    s = AbServer("sqlite:///%s" % (tmp_path / "abserver.db"), name="abserver-security",
                 options=["--ping-interval", "1"]).start()
    s.db_path = tmp_path / "abserver.db"
    s.token = s.add_user("alice")
    s.dataset = s.import_example("alice")
    yield s
    s.stop()


@pytest.fixture
def private_bus():
    if not shutil.which("dbus-daemon"):
        pytest.skip("dbus-daemon is not installed")
    proc = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                            stdout=subprocess.PIPE, text=True)
    address = proc.stdout.readline().strip()
    yield address
    proc.kill()
    proc.wait()


def _dbus_status(address):
    r = subprocess.run(["dbus-send", "--bus=" + address, "--print-reply", "--dest=org.acousticbrainz.Runner1",
                        "/org/acousticbrainz/Runner1", "org.acousticbrainz.Runner1.GetStatus"],
                       capture_output=True, text=True, timeout=30)
    return r.stdout + r.stderr


def test_token_absent_from_dbus_pings_and_logs_of_a_real_job(srv, tmp_path, private_bus, baselines):
    job = srv.submit(srv.dataset, *GRID)
    d = Daemon(tmp_path / "d", srv.base_url, srv.token, name="daemon-security",
               extra={"dbus_bus": private_bus}).start()
    replies = []
    try:
        wait_for(lambda: local_state(d.work_dir, job).get("stage") == "training", 300, what="training")
        replies.append(_dbus_status(private_bus))
        wait_for(lambda: server_job(srv.base_url, srv.token, job)["status"] == "done", 600, what="the job")
        replies.append(_dbus_status(private_bus))
    finally:
        d.stop()
    (captures_dir() / ("dbus-replies-%s.txt" % job)).write_text("\n".join(replies))
    # An undisturbed run of the shared grid: the baseline of the fault modules that follow.
    baselines.setdefault(tuple(GRID), comparable(server_job(srv.base_url, srv.token, job)["result"]))
    con = sqlite3.connect(str(srv.db_path))
    stored = con.execute("SELECT progress, status_msg, runner_name FROM jobs WHERE id = ?", (job,)).fetchone()
    con.close()
    (captures_dir() / ("server-progress-%s.txt" % job)).write_text(repr(stored))
    with record.case("security", "token absent from D-Bus GetStatus replies") as c:
        assert "job_id" in replies[0] or job in replies[0], "GetStatus gave no status: %r" % replies[0][:300]
        assert not leaks.find_in_text("\n".join(replies), [srv.token])
        c.message = "%d replies checked" % len(replies)
    with record.case("security", "token absent from status pings stored by the server") as c:
        assert stored[0], "no progress was stored"
        assert not leaks.find_in_text(repr(stored), [srv.token])
    with record.case("security", "token absent from the daemon's log of a whole job (debug level)") as c:
        out = d.output()
        assert "claimed job" in out
        assert not leaks.find_in_text(out, [srv.token])


def _daemon_once(tmp_path, name, server_url, token, extra=None, timeout=60):
    d = Daemon(tmp_path / name, server_url, token, name="daemon-" + name, extra=extra).start()
    return d


def test_daemon_idles_with_an_empty_token_file(tmp_path, srv):
    d = _daemon_once(tmp_path, "emptytoken", srv.base_url, "")
    try:
        wait_for(lambda: "no token" in d.output(), 60, what="the daemon to say it has no token")
        time.sleep(1)
        with record.case("bad_input", "token file: empty (daemon stays up, idle)") as c:
            line = [l for l in d.output().splitlines() if "no token" in l][0]
            c.message = line.split(": ", 1)[-1].replace(str(tmp_path), "<dir>")
            assert d.alive(), "the daemon exited instead of idling"
            assert "token" in c.message and str(d.token_path).replace(str(tmp_path), "<dir>") in c.message
    finally:
        d.stop()


def test_daemon_with_a_token_the_server_does_not_know(tmp_path, srv):
    fake = leaks.register("f" * 8 + "0badc0de" * 7)
    d = _daemon_once(tmp_path, "badtoken", srv.base_url, fake)
    try:
        wait_for(lambda: "token rejected" in d.output(), 60, what="the daemon to report the rejected token")
        with record.case("bad_input", "token unknown to the server") as c:
            line = [l for l in d.output().splitlines() if "token rejected" in l][0]
            c.message = line.split(": ", 1)[-1].replace(str(tmp_path), "<dir>")
            assert d.alive()
            assert not leaks.find_in_text(d.output(), [fake]), "the rejected token was logged"
    finally:
        d.stop()


@pytest.mark.parametrize("name,yaml,fragment", [
    ("daemon: unknown key in the config file", "bogus_key: 1\n", "unknown key"),
    ("daemon: broken YAML", "server_url: [\n", "not valid YAML"),
])
def test_daemon_exits_78_on_a_bad_config(tmp_path, srv, name, yaml, fragment):
    d = Daemon(tmp_path / "badcfg", srv.base_url, srv.token, name="daemon-badcfg")
    d.config_path.write_text(d.config_path.read_text() + yaml)
    d.start()
    wait_for(lambda: not d.alive(), 60, what="the daemon to refuse its config")
    out = d.output().strip()
    with record.case("bad_input", name) as c:
        c.message = out.splitlines()[-1].replace(str(tmp_path), "<dir>") if out else ""
        assert d.proc.popen.returncode == 78, out
        assert fragment in out and str(d.config_path) in out
        assert not leaks.find_in_text(out, [srv.token])
