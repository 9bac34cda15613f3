"""Daemon modes and controls: --daemon with a pidfile, SIGHUP with a broken config,
max_memory, abrunnerctl (status over D-Bus, cancel, check-config, jobs)."""
import os
import signal
import subprocess
import sys

from runner.conftest import (GRID_MEDIUM, GRID_SMALL, ROOT, dbus_status, job_details, server_root,
                                   wait_for, wait_job_status)


def ctl(*args, env=None):
    return subprocess.run([sys.executable, "-m", "abrunnerd.ctl"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=ROOT, timeout=60, env=dict(os.environ, **(env or {})))


def test_daemon_mode_detaches_with_pidfile(owner, daemon_factory, tmp_path):
    srv, token, dataset = owner
    job = srv.submit(dataset, *GRID_SMALL)
    d = daemon_factory({"server_url": server_root(srv), "log_target": "auto"}, token=token)
    pidfile = str(tmp_path / "abrunnerd.pid")
    d.start("--daemon", "--pidfile", pidfile)
    assert d.wait(timeout=60) == 0  # the foreground process returns once detached
    pid = int(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), what="pidfile"))
    try:
        wait_job_status(srv, token, job, "done")
        log = os.path.join(d.work_dir, "abrunnerd.log")  # no syslog here: the fallback file
        wait_for(lambda: "finished: accuracy" in open(log).read(), what="the finished line in the log file")
    finally:
        os.kill(pid, signal.SIGTERM)  # the detached daemon we started (its id from the pidfile)
    wait_for(lambda: not os.path.exists(pidfile), what="pidfile removed on exit")
    assert token not in open(log).read()


def test_sighup_with_broken_config_keeps_running(owner, daemon_factory):
    srv, token, dataset = owner
    d = daemon_factory({"server_url": server_root(srv)}, token=token).start()
    d.wait_log("starting")
    with open(d.config_path, "a") as f:
        f.write("bogus_key: 1\n")
    d.signal(signal.SIGHUP)
    d.wait_log("configuration not reloaded, keeping the previous one")
    assert "key 'bogus_key': unknown key" in d.current_output()
    job = srv.submit(dataset, *GRID_SMALL)
    wait_job_status(srv, token, job, "done")


def test_max_memory_skips_job_saying_why(owner, daemon_factory):
    srv, token, dataset = owner
    job = srv.submit(dataset, *GRID_SMALL)
    d = daemon_factory({"server_url": server_root(srv), "max_memory": "1M"}, token=token).start()
    d.wait_log("skipping job %s: it needs about" % job)
    assert "more than max_memory" in d.current_output()
    assert job_details(srv, token, job)["status"] == "pending"


def test_abrunnerctl_status_cancel_check_config_jobs(owner, daemon_factory, private_bus):
    srv, token, dataset = owner
    d = daemon_factory({"server_url": server_root(srv), "dbus_bus": private_bus}, token=token)
    done = ctl("check-config", "--config", d.config_path)
    assert done.returncode == 0, done.stderr
    assert "token belongs to alice" in done.stdout.decode()
    job = srv.submit(dataset, *GRID_MEDIUM)
    listed = ctl("jobs", "--config", d.config_path)
    assert job in listed.stdout.decode()
    d.start()
    wait_for(lambda: dbus_status(private_bus).get("state") == "training", what="training")
    status = ctl("status", "--config", d.config_path)
    assert status.returncode == 0, status.stderr
    out = status.stdout.decode()
    assert "training job %s" % job[:8] in out and "job:      %s" % job in out
    cancel = ctl("cancel", "--config", d.config_path)
    assert cancel.returncode == 0, cancel.stderr
    d.wait_log("job %s canceled (on this runner)" % job)
    wait_for(lambda: job_details(srv, token, job)["status"] == "canceled", what="canceled on the server")
    assert token not in (done.stdout + done.stderr + listed.stdout + status.stdout).decode()


def test_abrunnerctl_without_daemon_says_so(tmp_path, private_bus):
    done = ctl("status", "--bus", private_bus)
    assert done.returncode == 69
    assert "abrunnerd is not running" in done.stderr.decode()
