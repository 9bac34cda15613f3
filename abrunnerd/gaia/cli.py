"""``abrunnerctl inspect-history FILE [--json]``: show what a Gaia model file contains.

Works on our histories and on Gaia's own.  A file that is not a valid history gets
one line on stderr saying what is wrong with it and exit status 65 (EX_DATAERR);
an unreadable file gets 66 (EX_NOINPUT).
"""
import argparse
import json
import os
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

    from abrunnerd.sinks import terminal

    if os.path.exists(args.file) and not os.path.isfile(args.file):
        print("abrunnerctl inspect-history: %s is not a regular file" % terminal(args.file), file=sys.stderr)
        return EX_NOINPUT
    try:
        steps = read_history(args.file)
    except OSError as exc:
        print("abrunnerctl inspect-history: cannot read %s: %s" % (terminal(args.file), exc.strerror or exc),
              file=sys.stderr)
        return EX_NOINPUT
    except HistoryError as exc:
        print("abrunnerctl inspect-history: %s" % terminal(str(exc)), file=sys.stderr)
        return EX_DATAERR
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
            MemoryError) as exc:
        print("abrunnerctl inspect-history: %s is not a Gaia history this tool can read (%s)"
              % (terminal(args.file), type(exc).__name__), file=sys.stderr)
        return EX_DATAERR
    try:
        summary = summarize(steps)
        text = json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n" if args.json \
            else render_text(summary)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        # Parseable, but a value has a type Gaia never writes there (crafted or damaged file).
        print("abrunnerctl inspect-history: %s parses as a history but holds values of unexpected types "
              "(%s: %s)" % (terminal(args.file), type(exc).__name__, terminal(str(exc), 200)), file=sys.stderr)
        return EX_DATAERR
    sys.stdout.write(text if args.json else terminal_lines(text))
    return 0


def terminal_lines(text: str) -> str:
    """The rendered summary with names from the file made terminal-safe, line by line."""
    from abrunnerd.sinks import terminal

    return "".join(terminal(line, 100000) + "\n" for line in text.splitlines())
