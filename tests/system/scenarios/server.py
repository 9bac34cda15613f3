#!/usr/bin/python3
"""abserver as a packaged service in a booted Debian (run by tests/system/test_system_server.py
through tools/debian-systemd-sandbox): both .debs installed together → the abserver user,
/var/lib/abserver, the 0640 settings file, the schema made by the package → the service
on the port the settings name → a user, a dataset and a job made with the installed
commands as the service user → the runner of the same container trains the job through
it → `abserver jobs` shows it done → purge removes both.

Parameters (/sandbox/src/params.json): debs {"runner", "server"}, port, grid (argv).
Each stage prints "STAGE <name> ok <seconds>"; /sandbox/out/report.json gets observations.
"""
import json
import os
import pwd
import re
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any, Callable, Dict, Optional

SRC, OUT = "/sandbox/src", "/sandbox/out"
PARAMS: Dict[str, Any] = json.load(open(os.path.join(SRC, "params.json")))
REPORT: Dict[str, Any] = {"stages": {}, "observed": {}}
STATE: Dict[str, str] = {}
SETTINGS = "/etc/abserver/abserver.yaml"
HISTORY_MAGIC = b"\x6a\xea\x72\x3d"


class Failed(Exception):
    pass


def check(cond: bool, what: str, seen: Any = None) -> None:
    if not cond:
        raise Failed(what + ("" if seen is None else "\n  seen: %s" % (seen,)))


def sh(cmd: str, check_rc: bool = True, timeout: float = 600) -> str:
    r = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=timeout,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if check_rc and r.returncode != 0:
        raise Failed("command failed (%d): %s\n%s" % (r.returncode, cmd, r.stdout[-3000:]))
    return r.stdout


def poll(fn: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fn()
        except Failed as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > end:
            raise Failed("timed out after %.0f s waiting for %s" % (timeout, what), last)
        time.sleep(interval)


def show(unit: str, prop: str) -> str:
    return sh("systemctl show -p %s --value %s" % (prop, unit)).strip()


def as_server(cmd: str) -> str:
    """An abserver command as the service user (as the README says); its stdout only."""
    r = subprocess.run("runuser -u abserver -- abserver " + cmd, shell=True, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=600)
    if r.returncode != 0:
        raise Failed("abserver %s failed (%d): %s" % (cmd, r.returncode, r.stderr[-2000:]))
    return r.stdout


def api(path: str, raw: bool = False, post: Any = None, status: Optional[list] = None) -> Any:
    headers = {"Authorization": "Token " + STATE["token"]}
    data = None
    if post is not None:
        data, headers["Content-Type"] = json.dumps(post).encode("utf-8"), "application/json"
    req = urllib.request.Request("http://127.0.0.1:%d/api/v1%s" % (PARAMS["port"], path), data=data,
                                 headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
        if status is not None:
            status.append(resp.status)
    return body if raw else json.loads(body.decode("utf-8"))


def stage_install() -> None:
    deb = PARAMS["debs"]
    cmd = "cd %s && apt-get install -y -q ./%s ./%s" % (SRC, deb["runner"], deb["server"])
    if subprocess.run(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
        sh("apt-get -q update")
        sh(cmd)
    st = os.stat("/var/lib/abserver")
    check((pwd.getpwuid(st.st_uid).pw_name, oct(st.st_mode & 0o7777)) == ("abserver", "0o750"),
          "/var/lib/abserver abserver 0750", (st.st_uid, oct(st.st_mode)))
    st = os.stat(SETTINGS)
    check((st.st_uid, oct(st.st_mode & 0o7777)) == (0, "0o640"), "settings 0640 root", oct(st.st_mode))
    check(SETTINGS in sh("dpkg-query -W -f '${Conffiles}' abserver"), "the settings file is a conffile")
    check(os.path.exists("/var/lib/abserver/abserver.db"), "the package made the database (init-db)")
    for doc in ("/usr/share/doc/abserver/server.md.gz", "/usr/share/doc/abserver/protocol.md.gz",
                "/usr/share/doc/abrunnerd/status.md.gz", "/usr/share/doc/abrunnerd/runner.md.gz"):
        check(os.path.exists(doc), "%s shipped" % doc)
    check(show("abserver.service", "UnitFileState") == "enabled", "abserver.service enabled")


def stage_serve() -> None:
    with open(SETTINGS, "a") as f:
        f.write("\nbind: 127.0.0.1:%d\n" % PARAMS["port"])
    sh("systemctl restart abserver")

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", PARAMS["port"])) == 0

    poll(listening, 60, "abserver to listen on port %d" % PARAMS["port"])
    out = sh("systemctl status --no-pager abserver", check_rc=False)
    check("active (running)" in out, "systemctl status abserver: active (running)", out[-2000:])
    pid = show("abserver.service", "MainPID")
    check(pwd.getpwuid(os.stat("/proc/%s" % pid).st_uid).pw_name == "abserver", "runs as user abserver")
    REPORT["observed"]["main_process"] = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode()
    out = sh("systemd-analyze security --no-pager abserver.service")
    m = re.search(r"Overall exposure level for abserver.service: ([0-9.]+)", out)
    REPORT["observed"]["exposure"] = float(m.group(1)) if m else None
    check(m is not None and float(m.group(1)) <= 2.5, "abserver.service is hardened (exposure <= 2.5)",
          out[-1500:])
    builders = poll(lambda: sh("pgrep -a -u abserver -f 'abserver build-worker'", check_rc=False).strip(), 30,
                    "the build worker serve starts")
    REPORT["observed"]["build_worker"] = builders


def stage_job() -> None:
    STATE["token"] = as_server("add-user alice").strip().splitlines()[-1]
    sh("rm -rf /var/tmp/dataset && cp -r %s/dataset /var/tmp/dataset && chmod -R a+rX /var/tmp/dataset" % SRC)
    dataset = as_server("import-dataset /var/tmp/dataset --owner alice").strip()
    STATE["job"] = as_server("submit %s --remote %s" % (dataset, " ".join(PARAMS["grid"]))).strip()
    listing = as_server("jobs")
    check(listing.splitlines()[0].split()[:2] == ["JOB", "STATUS"], "abserver jobs has a header", listing)
    check(STATE["job"] in listing and "pending" in listing, "the job is pending", listing)
    # Over the API the submit answers at once and the unit's build worker builds the job.
    codes: list = []
    queued = api("/datasets/%s/evaluate" % dataset, post={"options": {"c_values": [1], "gamma_values": [-3],
                                                                      "preprocessing_values": ["basic"]}},
                 status=codes)
    check(codes == [202] and queued.get("status") == "preparing", "an API submit answers 202 preparing",
          (codes, queued))
    built = poll(lambda: api("/datasets/evaluation/jobs/" + queued["job_id"])["status"] != "preparing"
                 and api("/datasets/evaluation/jobs/" + queued["job_id"]), 120, "the build worker to build it")
    check(built["status"] == "pending", "the API-submitted job was built and is pending", built)
    api("/datasets/evaluation/jobs/%s/cancel" % queued["job_id"], post={})  # the runner trains the first only


def stage_runner() -> None:
    """The runner of the same container trains the job through the packaged server."""
    tmp = "/etc/abrunnerd/token.new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(STATE["token"] + "\n")
    sh("chown root:abrunner %s && chmod 0640 %s && mv %s /etc/abrunnerd/token" % (tmp, tmp, tmp))
    text = open("/etc/abrunnerd/abrunnerd.yaml").read()
    text = re.sub(r"(?m)^#?\s*server_url:.*$", "server_url: http://127.0.0.1:%d/api/v1/" % PARAMS["port"],
                  text, count=1) + "\npoll_interval: 2\nmax_workers: 2\n"
    with open("/etc/abrunnerd/abrunnerd.yaml", "w") as f:
        f.write(text)
    sh("systemctl restart abrunnerd")

    def done() -> Any:
        d = api("/datasets/evaluation/jobs/" + STATE["job"])
        check(d.get("status") not in ("failed", "canceled"), "the job did not fail", d)
        return d if d.get("status") == "done" else None

    details = poll(done, 600, "the job to be done", interval=1)
    check("accuracy" in (details.get("result") or {}), "the result is on the server", details)
    model = api("/datasets/evaluation/jobs/%s/model" % STATE["job"], raw=True)
    check(model[:4] == HISTORY_MAGIC, "the .history is on the server", model[:8])
    listing = as_server("jobs")
    line = next(l for l in listing.splitlines() if l.startswith(STATE["job"]))
    check(line.split()[1] == "done" and line.rstrip().endswith("-"),
          "abserver jobs: done, no stale progress", line)
    status = sh("abrunnerctl status")
    check("last: job %s" % STATE["job"][:8] in status and "done" in status,
          "abrunnerctl status names the last result", status)
    REPORT["observed"]["ctl_status_after"] = status.strip()
    REPORT["observed"]["accuracy"] = details["result"]["accuracy"]
    check(show("abserver.service", "ActiveState") == "active", "abserver still active")


def stage_purge() -> None:
    out = sh("apt-get purge -y -q abserver abrunnerd")
    noise = [l for l in out.splitlines() if re.search(r"deluser|delgroup|crontab", l)]
    check(not noise, "no deluser/cron noise on purge", noise)
    for path in ("/var/lib/abserver", "/etc/abserver", "/lib/systemd/system/abserver.service",
                 "/etc/systemd/system/multi-user.target.wants/abserver.service", "/var/lib/abrunnerd",
                 "/etc/abrunnerd"):
        check(not os.path.lexists(path), "%s removed" % path)
    check(not sh("getent passwd abserver abrunner; getent group abserver abrunner", check_rc=False).strip(),
          "the users and groups are removed")
    procs = sh("pgrep -a -u 0 -f 'abserver|gunicorn' | grep -v pgrep || true", check_rc=False).strip()
    check(not procs or all("server.py" in l for l in procs.splitlines()), "no server process left", procs)


STAGES = [("install", stage_install), ("serve", stage_serve), ("job", stage_job), ("runner", stage_runner),
          ("purge", stage_purge)]


def main() -> int:
    rc = 0
    for name, fn in STAGES:
        t0 = time.monotonic()
        try:
            fn()
        except (Failed, subprocess.TimeoutExpired, OSError, StopIteration) as exc:
            print("FAILED in stage %s: %r" % (name, exc))
            print(sh("systemctl status --no-pager -l abserver abrunnerd", check_rc=False))
            print(sh("journalctl -u abserver -u abrunnerd --no-pager -n 80", check_rc=False))
            REPORT["failed"] = {"stage": name, "error": str(exc)}
            rc = 1
            break
        REPORT["stages"][name] = round(time.monotonic() - t0, 1)
        print("STAGE %s ok %.1f s" % (name, time.monotonic() - t0), flush=True)
    if os.path.isdir(OUT):
        with open(os.path.join(OUT, "report.json"), "w") as f:
            json.dump(REPORT, f, indent=1, default=str)
    return rc


if __name__ == "__main__":
    sys.exit(main())
