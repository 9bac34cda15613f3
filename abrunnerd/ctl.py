"""abrunnerctl: the command-line front end (status, control, local training, history inspection).

Each command group lives in its own module and adds its sub-commands through a
``register(subparsers)`` function; modules import numpy/scikit-learn only inside their
handlers, so ``abrunnerctl --help`` and ``abrunnerctl status`` stay light.
"""
import argparse
import importlib
import sys
from typing import List, Optional, Tuple

from abrunnerd import __version__
from abrunnerd.exitcodes import UNAVAILABLE

# Modules that contribute sub-commands, in the order they appear in --help, with the
# commands each one adds (listed here so they stay listed when the module cannot load).
COMMAND_MODULES = [
    ("abrunnerd.ctl_runner", ("status", "check-config", "jobs", "pause", "resume", "cancel")),
    ("abrunnerd.trainer.cli", ("train",)),
    ("abrunnerd.gaia.cli", ("inspect-history",)),
    ("abrunnerd.gaia.predict_cli", ("predict",)),
]
# Python module -> the Debian/Ubuntu package that provides it (for the message).
DEBIAN_PACKAGES = {"numpy": "python3-numpy", "scipy": "python3-scipy", "sklearn": "python3-sklearn",
                   "yaml": "python3-yaml", "requests": "python3-requests", "dbus": "python3-dbus",
                   "systemd": "python3-systemd", "daemon": "python3-daemon", "gi": "python3-gi"}


def missing_requirement(command: str, exc: ImportError) -> str:
    """One line: which command cannot run, which module is missing, and what installs it."""
    module = (exc.name or "").split(".")[0]
    package = DEBIAN_PACKAGES.get(module)
    fix = ("install %s (apt install %s, or pip install the abrunnerd requirements)" % (module, package)
           if package else "reinstall abrunnerd")
    return "abrunnerctl %s: unavailable on this Python %d.%d: %s; %s" % (
        command, sys.version_info[0], sys.version_info[1], exc, fix)


def _register_unavailable(sub: "argparse._SubParsersAction", commands: Tuple[str, ...], exc: ImportError) -> None:
    """Keep the commands listed; running one says what is missing instead of "invalid choice"."""
    for command in commands:
        line = missing_requirement(command, exc)
        parser = sub.add_parser(command, help="(unavailable: %s)" % exc, description=line, add_help=True)
        parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        parser.set_defaults(handler=lambda args, line=line: _unavailable(line))


def _unavailable(line: str) -> int:
    print(line, file=sys.stderr)
    return UNAVAILABLE  # a library the command needs is missing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="abrunnerctl",
        description="Control the abrunnerd training runner, train a dataset locally, inspect models.",
    )
    parser.add_argument("--version", action="version", version="abrunnerctl " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, commands in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            _register_unavailable(sub, commands, exc)
            continue
        module.register(sub)  # type: ignore[attr-defined]
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except ImportError as exc:  # a library the handler imports lazily (scikit-learn in train)
        return _unavailable(missing_requirement(args.command, exc))


if __name__ == "__main__":
    sys.exit(main())
