#!/usr/bin/python3
"""The user's whole path with the abrunnerd package, run inside a booted Debian
container by tests/system/test_system_lifecycle.py (tools/debian-systemd-sandbox).

Stdlib plus the packages abrunnerd itself depends on (python3-dbus); Python 3.9+.
Parameters come from /sandbox/src/params.json (written by the host-side test):

  debs         {"first": "abrunnerd_0.1.0_all.deb", "upgrade": "abrunnerd_0.1.0+upgrade1_all.deb"}
  server_url   the job server on the host's loopback (the container shares it)
  token        the job owner's token (written to /etc/abrunnerd/token, never printed)
  job_id       the submitted job the runner must claim and finish
  stages       which stages to run (all by default); "install" alone checks the
               package path without a job server

Each stage prints "STAGE <name> ok <seconds>"; a failed check raises and prints
"FAILED: ..." with what was seen. /sandbox/out/report.json gets the timings and
observations, /sandbox/out/journal.txt the unit's journal.
"""
import json
import os
import pwd
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from typing import Any, Callable, Dict, List, Optional

SRC, OUT = "/sandbox/src", "/sandbox/out"
UNIT = "abrunnerd.service"
BUS_NAME = OBJ_IFACE = "org.acousticbrainz.Runner1"
OBJ_PATH = "/org/acousticbrainz/Runner1"
TOKEN_FILE, CONFIG = "/etc/abrunnerd/token", "/etc/abrunnerd/abrunnerd.yaml"
MSG_TOKEN_MISSING = "b8488218bfbf4ae7b6e7559810e969fd"
MSG_CLAIMED = "4a37ccd9f93c4a55b2c2ba7216565cb4"
MSG_FINISHED = "98d15ee42b874babb659eef94dc86d8d"
HISTORY_MAGIC = b"\x6a\xea\x72\x3d"
MAX_EXPOSURE = 2.0
TESTER = "abtester"  # an unprivileged user for read-only status checks

PARAMS: Dict[str, Any] = json.load(open(os.path.join(SRC, "params.json")))
REPORT: Dict[str, Any] = {"stages": {}, "observed": {}}


class Failed(Exception):
    pass


class Fatal(Failed):
    """A failure no amount of waiting fixes: poll() gives up at once."""


def check(cond: bool, what: str, seen: Any = None) -> None:
    if not cond:
        raise Failed(what + ("" if seen is None else "\n  seen: %s" % (seen,)))


def sh(cmd: str, check_rc: bool = True, timeout: float = 300, **kw: Any) -> str:
    r = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=timeout, **kw)
    if check_rc and r.returncode != 0:
        raise Failed("command failed (%d): %s\n%s" % (r.returncode, cmd, r.stdout[-3000:]))
    return r.stdout


def poll(fn: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """fn() until truthy; generous timeouts, never a fixed sleep as the assertion."""
    end = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fn()
        except Fatal:
            raise
        except Failed as exc:
            last = exc
            value = None
        else:
            value = last
        if value:
            return value
        if time.monotonic() > end:
            raise Failed("timed out after %.0f s waiting for %s" % (timeout, what), last)
        time.sleep(interval)


def show(prop: str) -> str:
    return sh("systemctl show -p %s --value %s" % (prop, UNIT)).strip()


def journal(since_usec: int = 0, **match: str) -> List[Dict[str, Any]]:
    """The unit's journal records (JSON), optionally only newer than since_usec."""
    out = sh("journalctl -u %s -o json --no-pager %s" % (
        UNIT, " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in match.items())), check_rc=False)
    recs = []
    for line in out.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if int(rec.get("__REALTIME_TIMESTAMP", 0)) > since_usec:
            recs.append(rec)
    return recs


def now_usec() -> int:
    return int(time.time() * 1e6)


def bus_status() -> Dict[str, Any]:
    import dbus  # python3-dbus, a dependency of abrunnerd

    bus = dbus.SystemBus()
    try:
        obj = bus.get_object(BUS_NAME, OBJ_PATH, introspect=False)
        st = obj.GetStatus(dbus_interface=OBJ_IFACE, timeout=10)
    except dbus.DBusException as exc:
        raise Failed("GetStatus failed: %s" % exc)
    return {str(k): (v if not isinstance(v, dbus.String) else str(v)) for k, v in st.items()}


def progress_lines(job_id: str, since: int = 0, not_pid: str = "") -> List[int]:
    """cells_done of each progress line ("43% ETA 12 min (620/1440) 1f3c2a4b") of the job
    (not from not_pid); the line has % and ETA first and fits systemctl status's columns."""
    done = []
    for rec in journal(since, JOB_ID=job_id):
        if not_pid and rec.get("_PID") == not_pid:
            continue
        msg = rec.get("MESSAGE", "")
        m = re.match(r"^(\d+)%( ETA [0-9.]+ (s|min|h))? \((\d+)/(\d+)\) ([0-9a-f]{8})$", msg)
        if m:
            check(m.group(6) == job_id[:8] and len(msg) <= 40, "short progress line with the short id", msg)
            done.append(int(m.group(4)))
    return done


def api(path: str, raw: bool = False) -> Any:
    req = urllib.request.Request(PARAMS["server_url"].rstrip("/") + "/api/v1" + path,
                                 headers={"Authorization": "Token " + PARAMS["token"]})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
    return body if raw else json.loads(body.decode("utf-8"))


def as_tester(cmd: str, check_rc: bool = True) -> str:
    return sh("runuser -u %s -- %s" % (TESTER, cmd), check_rc=check_rc)


def run(cmd: str, user: str = "") -> subprocess.CompletedProcess:
    """A command whose exit status is part of what is checked (stdout, stderr apart)."""
    if user:
        cmd = "runuser -u %s -- %s" % (user, cmd)
    return subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)


def expect_rc(r: subprocess.CompletedProcess, code: int, what: str, *texts: str) -> None:
    """The documented exit status (abrunnerd/exitcodes.py, man pages) and the fix named."""
    out = r.stdout + r.stderr
    check(r.returncode == code, "%s exits %d" % (what, code), (r.returncode, out[-1500:]))
    for text in texts:
        check(text in out, "%s says %r" % (what, text), out[-1500:])
    REPORT["observed"].setdefault("exit_codes", {})[what] = [r.returncode, out.strip()[-300:]]


def status_line() -> str:
    """The Status: line of `systemctl status` (what STATUS= last said)."""
    out = sh("systemctl status --no-pager %s" % UNIT, check_rc=False)
    m = re.search(r'Status: "(.*)"', out)
    return m.group(1) if m else ""


def ctl_first_line(user: str = "") -> str:
    r = run("abrunnerctl status", user)
    expect_rc(r, 0, "abrunnerctl status" + (" as " + user if user else ""))
    return r.stdout.splitlines()[0] if r.stdout else ""


def write_token(mode: int, group: str) -> None:
    tmp = TOKEN_FILE + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(PARAMS["token"] + "\n")
    sh("chown root:%s %s && chmod %o %s && mv %s %s" % (group, tmp, mode, tmp, tmp, TOKEN_FILE))


CELLS_RE = re.compile(r"(\d+)% \((\d+)/(\d+) cells\)")


class Sampler:
    """Samples the Status line (and D-Bus cells) every 0.3 s in a thread while a stage
    disturbs the job: progress must never decrease, never read 0/0 or another stage's
    figure (a "training"/"paused" line either says "preparing" before any cell is known,
    or shows cells whose percentage matches them)."""

    def __init__(self) -> None:
        import threading
        self.lines: List[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                line = show("StatusText")
            except Exception:
                line = ""
            if line and (not self.lines or self.lines[-1] != line):
                self.lines.append(line)
            self._stop.wait(0.3)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)

    def check(self, job8: str) -> None:
        best, seen_cells = -1, False
        for line in self.lines:
            if job8 not in line:
                continue
            check("0/0" not in line, "no 0/0 in the status", line)
            m = CELLS_RE.search(line)
            if m:
                pct, done, total = int(m.group(1)), int(m.group(2)), int(m.group(3))
                check(abs(pct - 100.0 * done / total) <= 1, "the percentage is the cells' own", line)
                check(done >= best, "progress never goes backwards (%d after %d)" % (done, best),
                      self.lines)
                best, seen_cells = done, True
            elif re.match(r"(training|paused) job", line):
                check(not seen_cells and "preparing" in line,
                      "a training line without cells says 'preparing', and only before any cell", line)


def file_snapshot() -> List[str]:
    prune = ["/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp", "/sandbox", "/var/log",
             "/var/cache", "/var/lib/apt", "/var/lib/dpkg", "/var/lib/systemd", "/var/lib/dbus",
             "/var/lib/ucf", "/etc/ld.so.cache"]
    expr = " -o ".join("-path %s" % p for p in prune)
    return sh("find / -xdev \\( %s \\) -prune -o -print" % expr).splitlines()


# --- stages -------------------------------------------------------------------------------

def stage_install() -> None:
    REPORT["before"] = file_snapshot()
    sh("useradd --no-create-home --shell /usr/sbin/nologin %s" % TESTER)
    deb = PARAMS["debs"]["first"]
    cmd = "cd %s && apt-get install -y -q ./%s" % (SRC, deb)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(cmd, shell=True, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=600)
    if r.returncode != 0:  # stale package lists in the cached rootfs
        sh("apt-get -q update", env=env)
        sh(cmd, env=env, timeout=600)
    check(sh("dpkg-query -W -f '${Status}' abrunnerd") == "install ok installed", "abrunnerd installed")
    warnings = sh("journalctl -b --no-pager | grep -F 'Unknown username' || true")
    check(not warnings.strip(), "no D-Bus 'Unknown username' warnings on install", warnings)


def stage_idle() -> None:
    """Active, idle, one journal line naming the token file, no restart loop."""
    def active() -> bool:
        if int(show("NRestarts") or 0) >= 2:
            raise Fatal("abrunnerd is in a restart loop (NRestarts=%s)" % show("NRestarts"))
        return show("ActiveState") == "active"

    poll(active, 60, "abrunnerd to be active")
    check(show("Type") == "notify", "Type=notify", show("Type"))
    rec = poll(lambda: journal(MESSAGE_ID=MSG_TOKEN_MISSING), 60, "the missing-token journal line")
    check(TOKEN_FILE in rec[0]["MESSAGE"], "the journal line names %s" % TOKEN_FILE, rec[0]["MESSAGE"])
    status = show("StatusText")
    check(TOKEN_FILE in status, "STATUS= names the token file", status)
    # still up and idle a while later, with exactly one such line and no restarts
    poll(lambda: bus_status().get("state") == "no-token", 30, "D-Bus state no-token")
    check(show("NRestarts") == "0" and show("ActiveState") == "active", "no restart loop",
          (show("NRestarts"), show("ActiveState")))
    check(len(journal(MESSAGE_ID=MSG_TOKEN_MISSING)) == 1, "the missing-token line is logged once",
          len(journal(MESSAGE_ID=MSG_TOKEN_MISSING)))
    REPORT["observed"]["idle_status"] = status
    REPORT["observed"]["token_missing_line"] = rec[0]["MESSAGE"]


def stage_files() -> None:
    """What the package put on the system, and with which owners and modes."""
    st = os.stat("/etc/abrunnerd")
    check((pwd.getpwuid(st.st_uid).pw_name, oct(st.st_mode & 0o7777)) == ("root", "0o750"),
          "/etc/abrunnerd root 0750", (st.st_uid, oct(st.st_mode)))
    st = os.stat("/var/lib/abrunnerd")
    check((pwd.getpwuid(st.st_uid).pw_name, oct(st.st_mode & 0o7777)) == ("abrunner", "0o750"),
          "/var/lib/abrunnerd abrunner 0750", (st.st_uid, oct(st.st_mode)))
    check(CONFIG in sh("dpkg-query -W -f '${Conffiles}' abrunnerd"), "%s is a conffile" % CONFIG)
    check(os.path.exists("/usr/share/dbus-1/system.d/org.acousticbrainz.Runner1.conf"), "bus policy installed")
    check(MSG_TOKEN_MISSING in sh("journalctl --list-catalog --no-pager"), "journal catalog installed")
    check("abrunnerctl" in sh("abrunnerctl --help"), "abrunnerctl --help")
    sh("man -w abrunnerd abrunnerctl abrunnerd.yaml 2>/dev/null || "
       "test -e /usr/share/man/man8/abrunnerd.8.gz -a -e /usr/share/man/man5/abrunnerd.yaml.5.gz "
       "-a -e /usr/share/man/man1/abrunnerctl.1.gz")


def stage_security() -> None:
    out = sh("systemd-analyze security --no-pager %s" % UNIT)
    m = re.search(r"Overall exposure level for %s: ([0-9.]+)" % re.escape(UNIT), out)
    check(m is not None, "systemd-analyze security prints an exposure level", out[-2000:])
    exposure = float(m.group(1))
    REPORT["observed"]["exposure"] = exposure
    print("systemd-analyze security: exposure %.1f" % exposure)
    check(exposure <= MAX_EXPOSURE, "exposure <= %.1f" % MAX_EXPOSURE, out)


def stage_status_idle() -> None:
    """abrunnerctl status over the system bus, as root and as an unprivileged user."""
    root_out = sh("abrunnerctl status")
    user_out = as_tester("abrunnerctl status")
    check("token" in root_out.lower() and "token" in user_out.lower(),
          "abrunnerctl status says a token is missing", (root_out, user_out))
    denied = subprocess.run(["runuser", "-u", TESTER, "--", "abrunnerctl", "pause"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    check(denied.returncode == 77 and "root or group abrunner" in denied.stdout,
          "an unprivileged user cannot pause the runner (exit 77, names the group)", denied.stdout)
    REPORT["observed"]["status_idle_root"] = root_out
    REPORT["observed"]["pause_as_user"] = denied.stdout.strip()


def stage_preseed() -> None:
    """An admin preseeds the token (debconf password question) before installing."""
    sh("echo 'abrunnerd abrunnerd/token password %s' | debconf-set-selections" % PARAMS["token"])


def stage_debconf_token() -> None:
    """The preseeded token became a 0640 root:abrunner file; debconf keeps no copy."""
    st = os.stat(TOKEN_FILE)
    check((st.st_uid, oct(st.st_mode & 0o7777)) == (0, "0o640"), "token file root 0640",
          (st.st_uid, oct(st.st_mode)))
    check(st.st_gid == pwd.getpwnam("abrunner").pw_gid, "token file group abrunner", st.st_gid)
    check(open(TOKEN_FILE).read().strip() == PARAMS["token"], "token file holds the preseeded token")
    leaks = sh("grep -rl -F %s /var/cache/debconf/ 2>/dev/null || true" % shlex.quote(PARAMS["token"]))
    check(not leaks.strip(), "debconf keeps no copy of the token", leaks)
    poll(lambda: bus_status().get("state") not in ("no-token", "", None), 60, "the daemon to use the token")
    check(show("ActiveState") == "active", "active with a token and no reachable server", show("ActiveState"))


def stage_watchdog() -> None:
    """The idle daemon feeds the watchdog: with WatchdogSec=4 systemd sees pings keep coming."""
    dropin = "/etc/systemd/system/%s.d/watchdog-test.conf" % UNIT
    os.makedirs(os.path.dirname(dropin), exist_ok=True)
    with open(dropin, "w") as f:
        f.write("[Service]\nWatchdogSec=4\n")
    sh("systemctl daemon-reload && systemctl restart %s" % UNIT)
    stamps = set()

    def pinged_three_times() -> bool:
        stamps.add(show("WatchdogTimestampMonotonic"))
        return len(stamps - {"0", ""}) >= 3

    poll(pinged_three_times, 60, "three watchdog pings from the idle daemon", interval=0.5)
    check(show("NRestarts") == "0" and show("ActiveState") == "active", "no watchdog restart",
          (show("NRestarts"), show("ActiveState")))
    os.unlink(dropin)
    os.rmdir(os.path.dirname(dropin))
    sh("systemctl daemon-reload && systemctl restart %s" % UNIT)


def stage_upgrade_stopped() -> None:
    """An upgrade does not start a runner the admin stopped (try-restart semantics). After
    the mid-job upgrade this reinstalls the same version, which dpkg runs as an upgrade."""
    sh("systemctl stop %s" % UNIT)
    deb = PARAMS["debs"]["upgrade"]
    again = "--reinstall" if sh("dpkg-query -W -f '${Version}' abrunnerd") == PARAMS["upgrade_version"] else ""
    sh("cd %s && DEBIAN_FRONTEND=noninteractive apt-get install -y -q %s ./%s" % (SRC, again, deb), timeout=600)
    check(sh("dpkg-query -W -f '${Version}' abrunnerd") == PARAMS["upgrade_version"], "upgraded")
    check(show("ActiveState") == "inactive", "a stopped runner stays stopped across an upgrade",
          show("ActiveState"))
    check(show("UnitFileState") == "enabled", "still enabled", show("UnitFileState"))


def stage_sysvinit() -> None:
    """The init script (hosts without systemd): abrunnerd --daemon --pidfile as user abrunner."""
    init = "_SYSTEMCTL_SKIP_REDIRECT=1 SYSTEMCTL_SKIP_REDIRECT=1 /etc/init.d/abrunnerd"
    pidfile = "/run/abrunnerd/abrunnerd.pid"
    sh("systemctl stop %s" % UNIT)  # one runner at a time; the next stage starts it again
    sh("%s start" % init)
    pid = poll(lambda: open(pidfile).read().strip() if os.path.exists(pidfile) else None, 60,
               "the init script's pidfile")
    check(os.path.exists("/proc/%s" % pid), "the daemon runs", pid)
    check(pwd.getpwuid(os.stat("/proc/%s" % pid).st_uid).pw_name == "abrunner", "it runs as abrunner")
    poll(lambda: bus_status().get("state") == "no-token", 60, "its D-Bus status (no-token)")
    check(subprocess.run(init + " status", shell=True).returncode == 0, "init script status: running")
    sh("%s stop" % init)
    poll(lambda: not os.path.exists("/proc/%s" % pid), 60, "the daemon to stop")
    check(subprocess.run(init + " status", shell=True, stdout=subprocess.DEVNULL).returncode != 0,
          "init script status: not running")


def stage_mistakes() -> None:
    """The walk-through's mistakes, each with the Status line, `abrunnerctl status` and the
    exit status checked: a YAML typo and a 0644 token refused by `systemctl reload` (no
    lying "no token" status), a 0600 root:root token the daemon cannot read, `jobs` as a
    user outside the group, then the fix. The server is unreachable here (port 9) so no
    job is claimed yet."""
    sh("systemctl start %s" % UNIT)  # the sysvinit stage left it stopped
    line = poll(lambda: (lambda l: l if l.startswith("no token") else None)(status_line()), 60,
                "the no-token Status line")
    check("still the shipped example" in line, "the no-token line says server_url is the shipped example", line)
    REPORT["observed"]["status_no_token"] = line
    text = open(CONFIG).read()
    good = re.sub(r"(?m)^#?\s*server_url:.*$", "server_url: http://127.0.0.1:9", text, count=1)
    with open(CONFIG, "w") as f:
        f.write(good + "\npol_interval: 2\n")  # the typo
    expect_rc(run("systemctl reload %s" % UNIT), 1, "systemctl reload after a typo")
    line = poll(lambda: (lambda l: l if l.startswith("configuration refused on reload") else None)(
        status_line()), 30, "the Status line to show the refused reload")
    check("pol_interval" in line and line.startswith("configuration refused on reload (still without a token)"),
          "the Status line names the typo", line)
    same = line.rstrip("…")  # STATUS= is bounded at 400 characters, abrunnerctl status is not
    check(ctl_first_line().startswith(same) and ctl_first_line(TESTER).startswith(same),
          "abrunnerctl status says the same", (ctl_first_line(), line))
    expect_rc(run("runuser -u abrunner -- abrunnerd --check-config"), 78, "abrunnerd --check-config (typo)",
              "pol_interval")
    REPORT["observed"]["status_typo"] = line
    with open(CONFIG, "w") as f:
        f.write(good)

    write_token(0o644, "abrunner")
    expect_rc(run("systemctl reload %s" % UNIT), 1, "systemctl reload with a 0644 token")
    line = poll(lambda: (lambda l: l if "every user" in l else None)(status_line()), 30,
                "the Status line to name the 0644 token")
    check(line.startswith("configuration refused on reload") and "chmod 0640" in line,
          "the refused token's Status line names the chmod", line)
    REPORT["observed"]["status_0644"] = line

    write_token(0o600, "root")
    expect_rc(run("systemctl reload %s" % UNIT), 1, "systemctl reload with a 0600 root:root token")
    line = poll(lambda: (lambda l: l if "Permission denied" in l else None)(status_line()), 30,
                "the Status line to name the unreadable token")
    expect_rc(run("runuser -u abrunner -- abrunnerd --check-config"), 78,
              "abrunnerd --check-config (0600 root:root token)", "token problem", "chown root:abrunner")
    REPORT["observed"]["status_0600"] = line

    expect_rc(run("abrunnerctl jobs", TESTER), 77, "abrunnerctl jobs as a user outside the group",
              "needs root or group abrunner")
    write_token(0o640, "abrunner")
    expect_rc(run("systemctl reload %s" % UNIT), 0, "systemctl reload with the fixed token")
    line = poll(lambda: (lambda l: l if l and not l.startswith(("configuration refused", "no token"))
                         else None)(status_line()), 30, "the refusal to clear")
    REPORT["observed"]["status_fixed"] = line
    expect_rc(run("abrunnerctl jobs"), 69, "abrunnerctl jobs with the server unreachable")
    sh("systemctl stop %s" % UNIT)
    check(status_line().startswith("stopped"), "a stopped runner's Status line says stopped", status_line())


def stage_pause_early() -> None:
    """Pause right at the start of training (before the training process reports), then
    resume: the Status line never shows another stage's figure or 0/0."""
    job8 = PARAMS["job_id"][:8]
    with Sampler() as sampler:
        poll(lambda: (lambda s: s if s.get("state") in ("training", "paused") else None)(bus_status()), 180,
             "training to start", interval=0.1)
        expect_rc(run("abrunnerctl pause"), 0, "abrunnerctl pause")
        poll(lambda: status_line().startswith("paused job " + job8), 30, "the paused Status line")
        paused = status_line()
        time.sleep(2)
        check(status_line() == paused, "a paused job's line stays put", (paused, status_line()))
        expect_rc(run("abrunnerctl resume"), 0, "abrunnerctl resume")
        poll(lambda: status_line().startswith("training job " + job8), 30, "training again")
        poll(lambda: training_status(1), 180, "a finished cell")
    sampler.check(job8)
    REPORT["observed"]["pause_early"] = sampler.lines[:20]


def stage_restart() -> None:
    """systemctl stop mid-training keeps the position (the stopped unit's Status says
    where), start resumes there; a pause right after the restart shows that position."""
    job8 = PARAMS["job_id"][:8]
    st = poll(lambda: training_status(1), 180, "training with cells done")
    with Sampler() as sampler:
        sh("systemctl stop %s" % UNIT)
        stopped = status_line()
        m = CELLS_RE.search(stopped)
        check(stopped.startswith("stopped: job %s" % job8) and m is not None,
              "the stopped unit's Status line keeps the job's position", stopped)
        kept = int(m.group(2))
        check(kept >= int(st["cells_done"]), "kept position >= the one seen before", (kept, st))
        stops = [r.get("MESSAGE", "") for r in journal(0) if "keeps its checkpoint at" in r.get("MESSAGE", "")]
        check(bool(stops) and "cells" in stops[-1], "the stop line says how far the job got", stops[-3:])
        sh("systemctl start %s" % UNIT)
        expect_rc(run("abrunnerctl pause"), 0, "abrunnerctl pause right after a restart")
        line = poll(lambda: (lambda l: l if l.startswith("paused job") else None)(status_line()), 60,
                    "paused after the restart")
        m = CELLS_RE.search(line)
        check(m is not None and int(m.group(2)) >= kept, "paused right after a restart shows the kept "
              "position, not 0%", (line, kept))
        expect_rc(run("abrunnerctl resume"), 0, "abrunnerctl resume after the restart")
        poll(lambda: training_status(kept + 1), 180, "training past the kept position")
    sampler.check(job8)
    resumed = [r.get("MESSAGE", "") for r in journal(0) if r.get("MESSAGE", "").startswith("resuming job")]
    check(any("cells" in m for m in resumed), "the resume line says where the job resumes", resumed[-3:])
    REPORT["observed"]["restart"] = {"stopped": stopped, "kept": kept, "lines": sampler.lines[:30]}


def stage_configure() -> None:
    """What the admin does: token file, server URL, restart."""
    tmp = TOKEN_FILE + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as f:
        f.write(PARAMS["token"] + "\n")
    sh("chown root:abrunner %s && chmod 0640 %s && mv %s %s" % (tmp, tmp, tmp, TOKEN_FILE))
    text = open(CONFIG).read()
    line = "server_url: %s" % PARAMS["server_url"]
    text, n = re.subn(r"(?m)^#?\s*server_url:.*$", line, text, count=1)
    if not n:
        text += "\n" + line + "\n"
    text += "\npoll_interval: 2\nmax_workers: 2\n"
    with open(CONFIG, "w") as f:
        f.write(text)
    REPORT["t_restart"] = now_usec()
    sh("systemctl restart %s" % UNIT)
    check(show("ActiveState") == "active", "active after restart", show("ActiveState"))


def stage_claim() -> None:
    """A real job is claimed; the journal carries the structured fields."""
    job = PARAMS["job_id"]
    recs = poll(lambda: journal(REPORT["t_restart"], MESSAGE_ID=MSG_CLAIMED, JOB_ID=job), 120,
                "the job-claimed journal record")
    rec = recs[0]
    for field in ("JOB_ID", "DATASET_ID", "STAGE", "PROGRESS"):
        check(field in rec, "claimed record has %s" % field, rec)
    train = poll(lambda: [r for r in journal(REPORT["t_restart"], JOB_ID=job)
                          if r.get("STAGE") == "training" and "PROGRESS" in r], 180,
                 "a training record with STAGE and PROGRESS")
    REPORT["observed"]["journal_training_record"] = {k: train[-1][k] for k in
                                                     ("JOB_ID", "DATASET_ID", "STAGE", "PROGRESS",
                                                      "MESSAGE", "_SYSTEMD_UNIT")}
    print("journal:", json.dumps(REPORT["observed"]["journal_training_record"]))


def training_status(min_done: int = 0) -> Optional[Dict[str, Any]]:
    st = bus_status()
    if st.get("state") == "training" and int(st.get("cells_done", 0)) >= min_done \
            and int(st.get("cells_total", 0)) > 0:
        return st
    return None


def stage_progress() -> None:
    """systemctl status shows the STATUS= progress line; abrunnerctl status for root and a user."""
    poll(lambda: training_status(1), 180, "training with at least one cell done")
    out = poll(lambda: (lambda o: o if re.search(r"Status: \"training job \S+: \d+%", o) else None)(
        sh("systemctl status --no-pager %s" % UNIT, check_rc=False)), 60, "the progress STATUS line")
    line = re.search(r"Status: \"[^\"]*\"", out).group(0)
    REPORT["observed"]["systemctl_status_line"] = line
    # The CGroup tree names the training processes (python3-setproctitle, a Recommends).
    tree = sh("systemctl status --no-pager -l %s" % UNIT, check_rc=False)
    # Worker processes exist only when the trainer's cost estimate says they pay off (small grids
    # train in the training process itself): every process there is must be named.
    check("abrunnerd: training job %s" % PARAMS["job_id"][:8] in tree
          and "multiprocessing" not in tree and "python3 -c" not in tree,
          "the CGroup tree names the training processes", tree[-3000:])
    print("systemctl status:", line)
    job8 = PARAMS["job_id"][:8]
    root_out = sh("abrunnerctl status")
    user_out = as_tester("abrunnerctl status")
    for who, o in (("root", root_out), (TESTER, user_out)):
        check(job8 in o and "train" in o.lower(), "abrunnerctl status as %s shows the job training" % who, o)
    REPORT["observed"]["status_training_user"] = user_out


def _restarted(old_pid: str) -> bool:
    pid = show("MainPID")
    return pid not in ("0", old_pid) and show("ActiveState") == "active"


def _resumed_from_checkpoint(since: int, before: int, what: str, old_pid: str) -> int:
    """The new daemon's first progress line shows at least the cells done before (lines the
    old daemon logged just before it went are not counted)."""
    job = PARAMS["job_id"]
    poll(lambda: [r for r in journal(since, JOB_ID=job) if "resuming job" in r.get("MESSAGE", "")],
         120, "the 'resuming job' line after " + what)
    after = poll(lambda: progress_lines(job, since, not_pid=old_pid), 180, "a progress line after " + what)[0]
    check(after >= before, "after %s training resumes from the checkpoint (cells done before %d, "
          "first progress after %d)" % (what, before, after), (before, after))
    print("%s: %d cells done before, resumed at %d" % (what, before, after))
    return after


def stage_kill9() -> None:
    """kill -9 of the main process mid-training: systemd restarts it, the job resumes."""
    st = poll(lambda: training_status(1), 180, "training with at least one cell done")
    total = int(st["cells_total"])
    check(int(st["cells_done"]) < total, "the job is still training when killed", st)
    old_pid = show("MainPID")
    restarts = int(show("NRestarts"))
    since = now_usec()
    before = int(bus_status().get("cells_done", 0))
    sh("kill -9 %s" % old_pid)
    poll(lambda: _restarted(old_pid), 60, "systemd to restart abrunnerd")
    check(int(show("NRestarts")) == restarts + 1, "restarted by systemd (NRestarts)", show("NRestarts"))
    after = _resumed_from_checkpoint(since, before, "kill -9", old_pid)
    REPORT["observed"]["kill9"] = {"cells_total": total, "done_before": before, "resumed_at": after}


def stage_upgrade() -> None:
    """Installing a newer build mid-job: try-restart, SIGTERM checkpoints, the job resumes."""
    st = poll(lambda: training_status(1), 180, "training again before the upgrade")
    check(int(st["cells_done"]) < int(st["cells_total"]), "the job is still training at the upgrade", st)
    old_pid = show("MainPID")
    since = now_usec()
    before = int(bus_status().get("cells_done", 0))
    deb = PARAMS["debs"]["upgrade"]
    sh("cd %s && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ./%s" % (SRC, deb), timeout=600)
    version = sh("dpkg-query -W -f '${Version}' abrunnerd")
    check(version == PARAMS["upgrade_version"], "upgraded package installed", version)
    poll(lambda: _restarted(old_pid), 60, "the upgrade to restart the running service")
    stopped = [r for r in journal(since) if "keeps its checkpoint" in r.get("MESSAGE", "")]
    check(bool(stopped), "the old daemon stopped cleanly, keeping the checkpoint",
          [r.get("MESSAGE") for r in journal(since)])
    after = _resumed_from_checkpoint(since, before, "the upgrade", old_pid)
    REPORT["observed"]["upgrade"] = {"version": version, "done_before": before, "resumed_at": after}


def stage_finish() -> None:
    """The result and the .history arrive on the server."""
    job = PARAMS["job_id"]
    poll(lambda: journal(0, MESSAGE_ID=MSG_FINISHED, JOB_ID=job), 600, "the job-finished journal record",
         interval=1)
    def done() -> Optional[Dict[str, Any]]:
        d = api("/datasets/evaluation/jobs/" + job)
        return d if d.get("status") == "done" else None

    details = poll(done, 60, "the job to be done on the server")
    result = details.get("result") or {}
    check("accuracy" in result and "confusion_matrix" in result, "the server has the result", result)
    model = api("/datasets/evaluation/jobs/%s/model" % job, raw=True)
    check(model[:4] == HISTORY_MAGIC, "the server has the Gaia .history", model[:16])
    REPORT["observed"]["result"] = {"accuracy": result.get("accuracy"),
                                    "parameters": result.get("parameters"), "model_bytes": len(model)}
    print("result on the server: accuracy %s, model %d bytes" % (result.get("accuracy"), len(model)))


def stage_purge() -> None:
    """apt purge leaves nothing behind."""
    sh("journalctl -u %s --no-pager -o short-precise > %s/journal.txt" % (UNIT, OUT), check_rc=False)
    REPORT["purge_output"] = sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q abrunnerd")
    status = sh("dpkg-query -W -f '${Status}' abrunnerd 2>/dev/null", check_rc=False).strip()
    check(status in ("", "unknown ok not-installed"), "abrunnerd purged", status)
    for path in ("/etc/abrunnerd", "/var/lib/abrunnerd", "/lib/systemd/system/abrunnerd.service",
                 "/etc/systemd/system/multi-user.target.wants/abrunnerd.service",
                 "/usr/share/dbus-1/system.d/org.acousticbrainz.Runner1.conf", "/etc/init.d/abrunnerd"):
        check(not os.path.lexists(path), "%s removed" % path)
    check(not sh("getent passwd abrunner; getent group abrunner", check_rc=False).strip(),
          "the abrunner user and group are removed")
    check(not sh("debconf-show abrunnerd 2>/dev/null", check_rc=False).strip(), "debconf entries purged")
    check(not sh("ls /var/lib/systemd/deb-systemd-helper-enabled/ -R | grep abrunnerd", check_rc=False).strip(),
          "no deb-systemd-helper state left")
    procs = subprocess.run(["pgrep", "-a", "-f", r"^\S*python3[.0-9]* (/usr/bin/abrunnerd|-m abrunnerd)"],
                           stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    check(not procs, "no abrunnerd process left", procs)
    noise = [l for l in REPORT.get("purge_output", "").splitlines() if re.search(r"deluser|delgroup|crontab", l)]
    check(not noise, "no deluser/cron noise on purge", noise)
    before = set(REPORT.pop("before", []))
    left = []
    for path in sorted(set(file_snapshot()) - before):
        if re.match(r"^/etc/(passwd|group|shadow|gshadow|subuid|subgid)-?$", path):
            continue  # the test's own user; abrunner's entries were checked above
        if "__pycache__" in path and "abrunnerd" not in path and "abserver" not in path:
            continue  # byte-code of dependencies apt installed
        if subprocess.run(["dpkg-query", "-S", path], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0:
            continue  # belongs to a dependency that apt installed
        left.append(path)
    check(not left, "nothing left behind after purge", left)


STAGES = [("preseed", stage_preseed), ("install", stage_install), ("debconf_token", stage_debconf_token),
          ("idle", stage_idle), ("files", stage_files), ("security", stage_security),
          ("status_idle", stage_status_idle), ("watchdog", stage_watchdog), ("sysvinit", stage_sysvinit),
          ("mistakes", stage_mistakes), ("configure", stage_configure), ("pause_early", stage_pause_early),
          ("claim", stage_claim), ("progress", stage_progress), ("restart", stage_restart),
          ("kill9", stage_kill9), ("upgrade", stage_upgrade), ("finish", stage_finish),
          ("upgrade_stopped", stage_upgrade_stopped), ("purge", stage_purge)]

OPTIONAL = ("preseed", "debconf_token")  # test_debconf_token asks for these


def main() -> int:
    wanted = PARAMS.get("stages") or [name for name, _ in STAGES if name not in OPTIONAL]
    t_all = time.monotonic()
    rc = 0
    for name, fn in STAGES:
        if name not in wanted:
            continue
        t0 = time.monotonic()
        try:
            fn()
        except (Failed, subprocess.TimeoutExpired) as exc:
            print("FAILED in stage %s: %s" % (name, exc))
            REPORT["failed"] = {"stage": name, "error": str(exc)}
            sh("systemctl status --no-pager -l %s" % UNIT, check_rc=False)
            print(sh("journalctl -u %s --no-pager -n 60" % UNIT, check_rc=False))
            rc = 1
            break
        dt = time.monotonic() - t0
        REPORT["stages"][name] = round(dt, 1)
        print("STAGE %s ok %.1f s" % (name, dt), flush=True)
    REPORT["total_seconds"] = round(time.monotonic() - t_all, 1)
    REPORT.pop("before", None)
    REPORT.pop("purge_output", None)
    if os.path.isdir(OUT):
        with open(os.path.join(OUT, "report.json"), "w") as f:
            json.dump(REPORT, f, indent=1, default=str)
        if not os.path.exists(os.path.join(OUT, "journal.txt")):
            sh("journalctl -u %s --no-pager -o short-precise > %s/journal.txt" % (UNIT, OUT), check_rc=False)
    return rc


if __name__ == "__main__":
    sys.exit(main())
