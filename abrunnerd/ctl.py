"""abrunnerctl: the command-line front end (status, control, local training, history inspection).

Each command group lives in its own module and adds its sub-commands through a
``register(subparsers)`` function; modules import numpy/scikit-learn only inside their
handlers, so ``abrunnerctl --help`` and ``abrunnerctl status`` stay light.
"""
import argparse
import importlib
import sys
from typing import List, Optional

from abrunnerd import __version__

# Modules that contribute sub-commands, in the order they appear in --help.
COMMAND_MODULES = [
    "abrunnerd.ctl_runner",  # status, check-config, jobs, pause, resume, cancel
    "abrunnerd.trainer.cli",  # train
    "abrunnerd.gaia.cli",  # inspect-history
    "abrunnerd.gaia.predict_cli",  # predict
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="abrunnerctl",
        description="Control the abrunnerd training runner, train a dataset locally, inspect models.",
    )
    parser.add_argument("--version", action="version", version="abrunnerctl " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue  # a command group not built yet
        module.register(sub)  # type: ignore[attr-defined]
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
