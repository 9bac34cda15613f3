"""The product, end to end: the real job server (SQLite) and the real daemon as processes.

Along the way: the journal-style stderr lines with their job fields and MESSAGE_IDs, the
sd_notify messages (a socket that records them), and the D-Bus status and Progress
signals on a private dbus-daemon, including pause (training processes stopped, pings say 'paused') and resume.
"""
import json
import os
import subprocess
import sys

import requests

from abrunnerd import messages
from runner.conftest import (GRID_SMALL, dbus_status, held_state, job_details, server_root,
                                   wait_for, wait_job_status)


def dbus_call(address, method):
    code = ("import dbus,sys;b=dbus.bus.BusConnection(sys.argv[1]);"
            "o=b.get_object('org.acousticbrainz.Runner1','/org/acousticbrainz/Runner1');"
            "getattr(dbus.Interface(o,'org.acousticbrainz.Runner1'),sys.argv[2])()")
    subprocess.run([sys.executable, "-c", code, address, method], check=True, timeout=30)


LISTEN = """
import json, sys
import dbus, dbus.mainloop.glib
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(sys.argv[1])
def on_progress(status):
    print(json.dumps({str(k): (v if isinstance(v, (int, float)) else str(v)) for k, v in status.items()}), flush=True)
bus.add_signal_receiver(on_progress, signal_name="Progress", dbus_interface="org.acousticbrainz.Runner1")
print("listening", flush=True)
GLib.MainLoop().run()
"""


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def test_job_trained_end_to_end(owner, daemon_factory, notify_socket, private_bus, tmp_path, request):
    d_tmp = tmp_path
    srv, token, dataset = owner
    job = srv.submit(dataset, *GRID_SMALL)
    signals_log = open(os.path.join(str(d_tmp), "progress-signals.jsonl"), "wb")
    listener = subprocess.Popen([sys.executable, "-c", LISTEN, private_bus], stdout=signals_log)
    request.addfinalizer(lambda: listener.poll() is None and listener.kill())
    wait_for(lambda: open(signals_log.name).read().startswith("listening"), what="the signal listener")
    d = daemon_factory({"server_url": server_root(srv), "dbus_bus": private_bus}, token=token,
                       env={"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "2000000"})
    d.start()
    wait_for(lambda: "READY=1" in notify_socket.lines(), what="READY=1")

    # Claimed: D-Bus shows the job; pause as soon as training runs.
    wait_for(lambda: dbus_status(private_bus).get("job_id") == job, what="the job on D-Bus")
    dbus_call(private_bus, "Pause")
    status = wait_for(lambda: (lambda s: s if s.get("state") == "paused" else None)(dbus_status(private_bus)),
                      what="paused on D-Bus")
    assert status["main_imports_numpy"] == 0 and status["main_imports_sklearn"] == 0
    assert token not in repr(status)
    pgid = held_state(d.work_dir, job)["worker_pgid"]
    wait_for(lambda: proc_state(pgid) == "T", what="training process stopped (SIGSTOP)")
    wait_for(lambda: (job_details(srv, token, job).get("progress") or {}).get("stage") == "paused",
             what="pings saying 'paused'")
    assert job_details(srv, token, job)["status"] == "running"
    dbus_call(private_bus, "Resume")
    wait_for(lambda: proc_state(pgid) != "T", what="training process continued (SIGCONT)")

    details = wait_job_status(srv, token, job, "done")
    result = details["result"]
    assert result["dataset"]["n_recordings"] == 60
    assert sum(sum(row.values()) for row in result["confusion_matrix"].values()) == 60
    assert result["runner"]["name"] == "test-runner"
    model = requests.get(srv.url("/datasets/evaluation/jobs/%s/model" % job), headers=srv.auth(token), timeout=30)
    assert model.status_code == 200 and model.content[:4] == b"\x6a\xea\x72\x3d"

    # Back to idle; the job's files are gone.
    wait_for(lambda: dbus_status(private_bus).get("state") == "idle", what="idle again")
    assert not os.path.exists(os.path.join(d.work_dir, "jobs", job))
    assert d.stop() == 0

    out = d.output()
    assert "claimed job %s" % job in out
    assert "message_id=%s" % messages.JOB_CLAIMED in out and "message_id=%s" % messages.JOB_FINISHED in out
    assert "job_id=%s dataset_id=%s stage=training" % (job, dataset) in out
    assert "job %s paused" % job in out and "job %s resumed" % job in out
    lines = notify_socket.lines()
    assert any(l.startswith("STATUS=training job %s" % job[:8]) and "cells" in l for l in lines), lines
    assert any(l.startswith("STATUS=paused job %s" % job[:8]) for l in lines), lines
    assert "STOPPING=1" in lines
    assert lines.count("WATCHDOG=1") >= 2  # fed from the main loop while training (every 1 s here)
    listener.terminate()
    listener.wait(timeout=10)
    signals_log.close()
    progress = [json.loads(l) for l in open(signals_log.name).read().splitlines()[1:]]
    states = [p["state"] for p in progress if p.get("job_id") == job]
    assert "training" in states and "paused" in states and "uploading" in states, sorted(set(states))
    assert any(p.get("cells_done", 0) > 0 for p in progress)
    d.assert_token_never_shown()
