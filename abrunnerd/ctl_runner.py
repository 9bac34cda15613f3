"""abrunnerctl's runner commands: status, check-config, jobs, pause, resume, cancel.

``status`` and the controls talk to the running daemon over D-Bus (the bus from
$ABRUNNERD_DBUS_ADDRESS, ``--bus``, or the config's ``dbus_bus``); ``check-config`` and
``jobs`` read the configuration and ask the server directly. No numpy here.
"""
import argparse
import os
import sys
from typing import Any, Dict

from abrunnerd.config import DEFAULT_CONFIG, ConfigError, load_config, load_token
from abrunnerd.exitcodes import CONFIG, NOPERM, UNAVAILABLE, config_problem
from abrunnerd.sinks import terminal

EX_UNAVAILABLE = UNAVAILABLE


def register(subparsers: Any) -> None:
    def add(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        p = subparsers.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default=os.environ.get("ABRUNNERD_CONFIG", DEFAULT_CONFIG),
                       help="configuration file (default %(default)s)")
        p.set_defaults(handler=handler)
        return p

    for name, handler, text in (
            ("status", cmd_status, "show what the running daemon is doing"),
            ("pause", cmd_control, "pause the current job (training processes stopped, lease kept)"),
            ("resume", cmd_control, "resume the paused job"),
            ("cancel", cmd_control, "cancel the current job (on the server too)")):
        p = add(name, handler, text)
        p.add_argument("--bus", help="system, session or a D-Bus address (default: the config's dbus_bus)")
        if name == "status":
            p.add_argument("--json", action="store_true", help="print the raw status as JSON")
    add("check-config", cmd_check_config, "validate the configuration and ask the server whose token it is")
    add("jobs", cmd_jobs, "list the token owner's pending remote jobs")


def _bus_spec(args: argparse.Namespace) -> str:
    if getattr(args, "bus", None):
        return args.bus
    if os.environ.get("ABRUNNERD_DBUS_ADDRESS"):
        return os.environ["ABRUNNERD_DBUS_ADDRESS"]
    try:
        return load_config(args.config, check_dirs=False).dbus_bus
    except ConfigError:
        return "system"


def _import_dbus() -> Any:
    try:
        import dbus
    except ImportError:
        print("abrunnerctl: this command talks to abrunnerd over D-Bus and needs dbus-python "
              "(apt install python3-dbus, or pip install dbus-python)", file=sys.stderr)
        raise SystemExit(EX_UNAVAILABLE)
    return dbus


def _proxy(args: argparse.Namespace) -> Any:
    dbus = _import_dbus()

    from abrunnerd.reporting.dbus_service import BUS_NAME, INTERFACE, OBJECT_PATH, connect

    bus = connect(_bus_spec(args))
    return dbus.Interface(bus.get_object(BUS_NAME, OBJECT_PATH), INTERFACE)


def _call(args: argparse.Namespace, method: str) -> Any:
    dbus = _import_dbus()

    try:
        return getattr(_proxy(args), method)()
    except dbus.exceptions.DBusException as exc:
        name = exc.get_dbus_name() or ""
        if name.endswith("ServiceUnknown") or name.endswith("NameHasNoOwner"):
            print("abrunnerctl: abrunnerd is not running (no org.acousticbrainz.Runner1 on the bus); "
                  "see 'systemctl status abrunnerd' and 'journalctl -u abrunnerd'", file=sys.stderr)
        elif name.rpartition(".")[2] in ("FileNotFound", "NoServer", "Disconnected", "NoReply", "TimedOut"):
            print("abrunnerctl: cannot reach abrunnerd over D-Bus (%s); see 'systemctl status abrunnerd' "
                  "and 'journalctl -u abrunnerd' (is dbus running?)" % (exc.get_dbus_message() or name),
                  file=sys.stderr)
        elif name.endswith("AccessDenied"):
            print("abrunnerctl: not allowed: %s needs root or group abrunner (sudo, or 'sudo adduser "
                  "$USER abrunner' and log in again)" % method.lower(), file=sys.stderr)
            raise SystemExit(NOPERM)
        elif name.endswith("NoJob"):
            print("abrunnerctl: no job is running, nothing to %s" % method.lower(), file=sys.stderr)
        else:
            print("abrunnerctl: %s" % terminal(exc.get_dbus_message() or name), file=sys.stderr)
        raise SystemExit(EX_UNAVAILABLE)


def cmd_status(args: argparse.Namespace) -> int:
    from abrunnerd.status import JOB_STATES, format_duration, summary

    snap: Dict[str, Any] = {str(k): _plain(v) for k, v in _call(args, "GetStatus").items()}
    if args.json:
        import json
        print(json.dumps(snap, indent=1, sort_keys=True))
        return 0
    snap = {k: terminal(v) if isinstance(v, str) else v for k, v in snap.items()}  # daemon text is server text
    print(summary(snap))
    if snap.get("config_error") and snap.get("state") in JOB_STATES:
        print("config:   reload refused: %s" % snap["config_error"])
    if snap.get("job_id"):
        print("job:      %s (dataset %s)" % (snap["job_id"], snap.get("dataset_id") or "?"))
        fraction = float(snap.get("fraction") or 0.0)
        if sys.stdout.isatty():
            width = 40
            filled = int(round(width * fraction))
            print("progress: [%s%s] %3.0f%%" % ("#" * filled, "-" * (width - filled), 100 * fraction))
        else:
            print("progress: %.0f%% (%s/%s cells)" % (100 * fraction, snap.get("cells_done", 0),
                                                      snap.get("cells_total", 0)))
        eta = snap.get("eta_seconds")
        if isinstance(eta, int) and eta >= 0 and snap.get("state") in ("training", "resuming"):
            print("eta:      " + format_duration(eta))
    if snap.get("last_result") and snap.get("job_id"):
        print("last:     %s" % snap["last_result"])
    if snap.get("last_error"):
        print("last error: %s" % snap["last_error"])
    _print_local_results(args)
    return 0


def _print_local_results(args: argparse.Namespace) -> None:
    """Jobs trained here and kept locally (servers with only AcousticBrainz's API)."""
    from abrunnerd.state import StateStore

    try:
        cfg = load_config(args.config, check_dirs=False)
    except ConfigError:
        return
    results = StateStore(cfg.work_dir).local_results()
    if results:
        print("kept locally (the server cannot take results): %d job(s) in %s/results"
              % (len(results), terminal(cfg.work_dir)))


def _plain(value: Any) -> Any:
    if isinstance(value, bool) or value.__class__.__name__ == "Boolean":
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def cmd_control(args: argparse.Namespace) -> int:
    method = {"pause": "Pause", "resume": "Resume", "cancel": "Cancel"}[args.command]
    _call(args, method)
    print("%s requested" % args.command)
    return 0


class NoToken(Exception):
    pass


def _config_failure(exc: Exception, command: str) -> int:
    if isinstance(exc, NoToken):
        print("abrunnerctl: %s" % terminal(str(exc), 20000), file=sys.stderr)
        return CONFIG
    text, code = config_problem(exc, "abrunnerctl " + command)
    print("abrunnerctl: %s" % terminal(text, 20000), file=sys.stderr)
    return code


def _client(args: argparse.Namespace) -> Any:
    from abrunnerd.client import Client
    from abrunnerd.status import is_example_url

    cfg = load_config(args.config, check_dirs=False)
    token = load_token(cfg)
    if token is None:
        raise NoToken("no token: put it into %s (chown root:abrunner, chmod 0640)%s" % (
            cfg.token_file, "; and server_url in %s is still the shipped example (%s)" % (cfg.path, cfg.server_url)
            if is_example_url(cfg.server_url) else ""))
    return cfg, Client(cfg.server_url, token, timeout=cfg.request_timeout, verify=cfg.tls_verify())


def cmd_check_config(args: argparse.Namespace) -> int:
    from abrunnerd.client import AuthError, ClientError, NotFound, RedirectError

    try:
        load_config(args.config)  # everything the daemon checks, work_dir included
        cfg, client = _client(args)
    except (ConfigError, NoToken) as exc:
        return _config_failure(exc, "check-config")
    print("%s: configuration is valid" % cfg.path)
    try:
        try:
            who = client.whoami()
        except (NotFound, RedirectError) as exc:
            # AcousticBrainz answers unknown paths (whoami) before it checks the token: ask
            # for the job list instead, which it does check.
            client.pending_jobs()
            print("the token is accepted by %s, a server with only AcousticBrainz's API (whoami answers %s): "
                  "jobs are trained here and their results kept in %s/results"
                  % (cfg.server_url, "HTTP %d" % getattr(exc, "status", 0), cfg.work_dir))
            return 0
    except AuthError as exc:
        print("abrunnerctl: token rejected: %s; put a valid token into %s"
              % (terminal(str(exc)), cfg.token_file), file=sys.stderr)
        return NOPERM
    except ClientError as exc:
        print("abrunnerctl: %s" % terminal(str(exc)), file=sys.stderr)
        return EX_UNAVAILABLE
    print("token belongs to %s on %s (server %s, API %s)" % (
        terminal(who.get("username")), cfg.server_url, terminal(who.get("server_version")),
        terminal(who.get("api_version"))))
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from abrunnerd.client import ClientError
    from abrunnerd.state import StateStore

    try:
        cfg, client = _client(args)
        jobs = client.pending_jobs()
    except (ConfigError, NoToken) as exc:
        return _config_failure(exc, "jobs")
    except ClientError as exc:
        print("abrunnerctl: %s" % terminal(str(exc)), file=sys.stderr)
        return NOPERM if getattr(exc, "status", None) in (401, 403) else EX_UNAVAILABLE
    local = {r["job_id"]: r for r in StateStore(cfg.work_dir).local_results()}
    if not jobs:
        print("no pending remote jobs")
    else:
        print("%-36s  %-30s  %s" % ("JOB", "DATASET", "SUBMITTED"))
    for job in jobs:
        note = ""
        if job.job_id in local:
            r = local[job.job_id]
            note = ("  [failed here: %s]" % terminal(r["failed"], 200) if r["failed"] else
                    "  [trained here: accuracy %.2f %%, result in %s]" % (r["accuracy"] or 0.0, r["path"]))
        print("%-36s  %-30s  %s%s" % (job.job_id, terminal(job.dataset_name, 200), terminal(job.created, 64), note))
    for problem in client.left_out:
        print("abrunnerctl: left out: %s" % terminal(problem), file=sys.stderr)
    return 0
