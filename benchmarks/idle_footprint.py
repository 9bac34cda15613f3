#!/usr/bin/env python3
"""Idle footprint of abrunnerd: RSS and CPU between polls, and proof that the main
process never loads numpy or scikit-learn (target: RSS <= 40 MB).

Starts the real job server (SQLite, a user with no jobs), a private dbus-daemon and the
real daemon polling every --poll seconds; after a settling time, samples the daemon's
RSS (/proc/PID/status VmRSS) and CPU time (/proc/PID/stat) over --seconds, scans
/proc/PID/maps for numpy/scikit-learn libraries and asks GetStatus for
main_imports_numpy. Side by side, the RSS of a plain python3 that imports what the
training process needs (numpy + scikit-learn) shows what keeping them out saves.

    .venv/bin/python benchmarks/idle_footprint.py [--seconds 30] [--poll 5]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, REPO)

from helpers.server import ServerProcess  # noqa: E402

TARGET_MB = 40.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def cpu_seconds(pid: int) -> float:
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def heavy_libraries(pid: int) -> list:
    with open("/proc/%d/maps" % pid) as f:
        paths = {line.split()[-1] for line in f if "/" in line}
    return sorted(p for p in paths if "/numpy/" in p or "/sklearn/" in p or "/scipy/" in p)


def get_status(address: str) -> dict:
    code = ("import dbus,json,sys;b=dbus.bus.BusConnection(sys.argv[1]);"
            "o=b.get_object('org.acousticbrainz.Runner1','/org/acousticbrainz/Runner1');"
            "s=dbus.Interface(o,'org.acousticbrainz.Runner1').GetStatus();"
            "print(json.dumps({str(k):(v if isinstance(v,(int,float)) else str(v)) for k,v in s.items()}))")
    out = subprocess.run([sys.executable, "-c", code, address], stdout=subprocess.PIPE, timeout=30)
    return json.loads(out.stdout.decode() or "{}")


def baseline_rss_mb(imports: str) -> float:
    code = "import os,%s;print(open('/proc/self/status').read())" % imports
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, timeout=120).stdout.decode()
    return int([l for l in out.splitlines() if l.startswith("VmRSS:")][0].split()[1]) / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="measuring window (default 30)")
    ap.add_argument("--poll", type=float, default=5.0, help="poll_interval of the daemon (default 5)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="abrunnerd-idle-")
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    address = bus.stdout.readline().decode().strip()
    daemon = None
    try:
        with ServerProcess(os.path.join(tmp, "server")) as srv:
            token = srv.add_user("idle")
            token_file = os.path.join(tmp, "token")
            with open(os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(token)
            config = os.path.join(tmp, "abrunnerd.yaml")
            with open(config, "w") as f:
                f.write("server_url: %s\ntoken_file: %s\nwork_dir: %s\npoll_interval: %s\n"
                        "dbus_bus: '%s'\nlog_target: stderr\n"
                        % (srv.base_url, token_file, os.path.join(tmp, "work"), args.poll, address))
            log = open(os.path.join(tmp, "daemon.log"), "wb")
            daemon = subprocess.Popen([sys.executable, "-m", "abrunnerd.daemon", "--config", config],
                                      stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
            time.sleep(max(3.0, args.poll))  # settle: first poll done (a benchmark, not a test)
            pid = daemon.pid
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            samples = []
            while time.monotonic() - t0 < args.seconds:
                samples.append(rss_mb(pid))
                time.sleep(0.5)
            cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
            status = get_status(address)
            libs = heavy_libraries(pid)
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
            daemon = None
    finally:
        if daemon is not None:
            daemon.kill()
        bus.terminate()
        bus.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    heavy = baseline_rss_mb("numpy,sklearn.svm,sklearn.model_selection")
    bare = baseline_rss_mb("sys")
    peak = max(samples)
    print("idle abrunnerd, poll every %.0f s, measured over %.0f s (%d samples):" % (args.poll, args.seconds,
                                                                                    len(samples)))
    print("  RSS            median %.1f MB, peak %.1f MB (target <= %.0f MB: %s)"
          % (sorted(samples)[len(samples) // 2], peak, TARGET_MB, "met" if peak <= TARGET_MB else "MISSED"))
    print("  CPU            %.2f %% of one core" % (100 * cpu))
    print("  numpy/sklearn  mapped libraries: %s; GetStatus main_imports_numpy=%s main_imports_sklearn=%s"
          % (len(libs) or "none", status.get("main_imports_numpy"), status.get("main_imports_sklearn")))
    print("side by side (same python):")
    print("  bare python3                          %.1f MB" % bare)
    print("  python3 + numpy + scikit-learn        %.1f MB" % heavy)
    print("  idle daemon / (python3 + numpy+sklearn) = %.2f" % (peak / heavy))
    return 0 if peak <= TARGET_MB and not libs else 1


if __name__ == "__main__":
    sys.exit(main())
