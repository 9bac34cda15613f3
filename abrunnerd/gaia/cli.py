"""``abrunnerctl inspect-history FILE [--json]``: show what a Gaia model file contains.

Works on our histories and on Gaia's own.  A file that is not a valid history gets
one line on stderr saying what is wrong with it and exit status 65 (EX_DATAERR);
an unreadable file gets 66 (EX_NOINPUT).
"""
import argparse
import json
import sys

EX_DATAERR, EX_NOINPUT = 65, 66


def register(subparsers: "argparse._SubParsersAction") -> None:
    parser = subparsers.add_parser(
        "inspect-history", help="show the transformations, layouts and SVM of a Gaia .history model",
        description="Print the chain of a Gaia .history model: each transformation with its key "
                    "parameters, the size of the layout it expects, and the SVM summary.")
    parser.add_argument("file", metavar="FILE", help="a Gaia .history file")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON for tools")
    parser.set_defaults(handler=handler)


def handler(args: argparse.Namespace) -> int:
    from abrunnerd.gaia.history import HistoryError, read_history
    from abrunnerd.gaia.inspect import render_text, summarize

    try:
        steps = read_history(args.file)
    except OSError as exc:
        print("abrunnerctl inspect-history: cannot read %s: %s" % (args.file, exc.strerror or exc), file=sys.stderr)
        return EX_NOINPUT
    except HistoryError as exc:
        print("abrunnerctl inspect-history: %s" % exc, file=sys.stderr)
        return EX_DATAERR
    summary = summarize(steps)
    if args.json:
        json.dump(summary, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(summary))
    return 0
