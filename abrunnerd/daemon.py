"""``abrunnerd``: the daemon's entry point, the whole story in one screen.

Parse arguments, load and validate the configuration (exit 78 on a bad file so systemd
does not restart-loop), optionally detach (``--daemon``), set up logging, install
flag-only signal handlers, publish status on D-Bus, run the loop, say goodbye.

SIGTERM/SIGINT: stop within seconds, keep the job and its checkpoint (not failed).
SIGHUP: reload the configuration and token (a token added later is picked up).
"""
import argparse
import logging
import os
import signal
import sys
from typing import Any, List, Optional, Tuple

from abrunnerd import __version__
from abrunnerd.config import DEFAULT_CONFIG, EX_CONFIG, Config, ConfigError, Secret, load_config, load_token
from abrunnerd.exitcodes import SOFTWARE, config_problem

log = logging.getLogger("abrunnerd")


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="abrunnerd", description="Train AcousticBrainz dataset models for "
                                "the token's owner, pulling jobs from a job server.")
    p.add_argument("--config", default=os.environ.get("ABRUNNERD_CONFIG", DEFAULT_CONFIG),
                   help="configuration file (default %(default)s)")
    p.add_argument("--once", action="store_true", help="process at most one job, then exit")
    p.add_argument("--check-config", action="store_true",
                   help="check the configuration and the token file, print the verdict, exit 0 or 78 "
                   "(systemctl reload runs this first and fails with the reason)")
    p.add_argument("--daemon", action="store_true", help="detach from the terminal (hosts without systemd)")
    p.add_argument("--pidfile", help="with --daemon: write the process id here")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                   help="override the configuration's log_level")
    p.add_argument("--version", action="version", version="abrunnerd " + __version__)
    return p.parse_args(argv)


def load(path: str) -> Tuple[Config, Optional[Secret]]:
    cfg = load_config(path)
    return cfg, load_token(cfg)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        cfg, token = load(args.config)
    except ConfigError as exc:
        text, code = config_problem(exc, "abrunnerd")
        print("abrunnerd: %s%s" % (text, "" if args.check_config else
                                   "; then run 'systemctl restart abrunnerd'"), file=sys.stderr)
        return code
    if args.check_config:
        print("abrunnerd: %s is valid; %s" % (cfg.path, "token read from %s" % cfg.token_file if token
                                              else "no token yet (%s)" % cfg.token_file))
        return 0
    if args.daemon:
        context = _daemon_context(cfg, args.pidfile)
        if context is None:
            return EX_CONFIG
        with context:
            return run(args, cfg, token)
    return run(args, cfg, token)


def run(args: argparse.Namespace, cfg: Config, token: Optional[Secret]) -> int:
    from abrunnerd.reporting.dbus_service import DBusService, bus_spec
    from abrunnerd.reporting.logs import setup_logging
    from abrunnerd.reporting.notify import Notifier
    from abrunnerd.runner import Runner, Signals
    from abrunnerd.status import RunnerStatus

    target = "syslog" if args.daemon and cfg.log_target == "auto" else cfg.log_target
    fallback = os.path.join(cfg.work_dir, "abrunnerd.log") if args.daemon else None  # stderr is gone
    setup_logging(target, args.log_level or cfg.log_level, fallback)
    signals = Signals()
    _install_signal_handlers(signals)
    log.info("abrunnerd %s starting (server %s, runner %s, work_dir %s)", __version__, cfg.server_url,
             cfg.runner_name, cfg.work_dir)
    status = RunnerStatus()
    bus = DBusService(status)
    if bus.start(bus_spec(cfg.dbus_bus)):
        log.debug("status published on D-Bus")

    def reload_config() -> Tuple[Config, Optional[Secret]]:
        return load(args.config)

    runner = Runner(cfg, token, status, Notifier(), signals, once=args.once, reload_config=reload_config)
    try:
        code = runner.run()
    except Exception:
        log.exception("abrunnerd stopped by an unexpected error; please report it with this traceback")
        code = SOFTWARE
    finally:
        bus.stop()
    log.info("abrunnerd stopped")
    return code


def _install_signal_handlers(signals: Any) -> None:
    """Handlers only set flags; the loop acts at its next safe point."""

    def stop(signum: int, frame: Any) -> None:
        signals.stop = True

    def reload(signum: int, frame: Any) -> None:
        signals.reload = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)


def _daemon_context(cfg: Config, pidfile: Optional[str]) -> Any:
    try:
        import daemon
        import daemon.pidfile
    except ImportError:
        print("abrunnerd: --daemon needs python3-daemon (apt install python3-daemon)", file=sys.stderr)
        return None
    os.makedirs(cfg.work_dir, mode=0o750, exist_ok=True)
    return daemon.DaemonContext(
        working_directory=cfg.work_dir, umask=0o027,
        pidfile=daemon.pidfile.TimeoutPIDLockFile(pidfile, acquire_timeout=5) if pidfile else None,
        signal_map={},  # our own flag-only handlers are installed after detaching
        detach_process=True)


if __name__ == "__main__":
    sys.exit(main())
