"""``abrunnerctl train DIR``: run the model search locally on an AB-form directory.

Writes ``result.json`` (AB's result shape plus the per-combination table),
``predictions.json`` (the final model's class probabilities for every recording) and
``<name>.history`` to OUTDIR.  The checkpoint log lives in OUTDIR too, so running the
same command again after an interruption resumes where it stopped.
Exit status: 0 done, 2 a bad option value (one line saying which), 65 (EX_DATAERR)
the dataset or options cannot be trained, 73 (EX_CANTCREAT) OUTDIR cannot be written,
130 interrupted (checkpoint kept). Bad input never ends in a traceback.
"""
import argparse
import json
import os
import sys
import time
from typing import Any

from abrunnerd.sinks import terminal

EX_USAGE = 2
EX_DATAERR = 65
EX_CANTCREAT = 73
EX_INTERRUPTED = 130
SEED_MAX = 2 ** 31 - 1


def register(subparsers: "argparse._SubParsersAction") -> None:
    parser = subparsers.add_parser(
        "train", help="train a dataset locally (AcousticBrainz's SVM model search)",
        description="Run AcousticBrainz's Gaia-compatible SVM model search on an AB-form directory "
                    "(dataset.json, lowlevel/<mbid>.json, optional artists.json).")
    parser.add_argument("dir", metavar="DIR", help="the dataset directory")
    parser.add_argument("--out", metavar="OUTDIR", help="where results go (default: DIR/train-out)")
    parser.add_argument("--c-values", type=int, nargs="+", metavar="EXP", help="C exponents (log2)")
    parser.add_argument("--gamma-values", type=int, nargs="+", metavar="EXP", help="gamma exponents (log2)")
    parser.add_argument("--preprocessing", nargs="+", metavar="NAME",
                        help="preprocessing sets (basic lowlevel nobands normalized gaussianized mfcc)")
    parser.add_argument("--artist-filter", action="store_true", help="keep each artist's recordings in one fold")
    parser.add_argument("--normalize", action="store_true", help="reduce every class to the smallest class's size")
    parser.add_argument("--seed", type=int, default=42, help="seed of folds and sampling (default 42)")
    parser.add_argument("--jobs", type=int, default=0, metavar="N", help="worker processes (default: all cores)")
    parser.add_argument("--checkpoint", metavar="FILE", help="checkpoint log (default: OUTDIR/checkpoint.jsonl)")
    parser.set_defaults(handler=handler)


class _Reporter:
    """A progress bar on a terminal, one plain line per few seconds otherwise."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0

    def __call__(self, p: Any) -> None:
        eta = "" if p.eta_seconds is None else " ETA %ds" % p.eta_seconds
        if self.tty and p.stage == "training" and p.cells_total:
            width = 30
            filled = int(width * p.cells_done / p.cells_total)
            self.stream.write("\r[%s%s] %d/%d cells%s   " % ("#" * filled, "." * (width - filled), p.cells_done,
                                                            p.cells_total, eta))
            self.stream.flush()
            return
        now = time.monotonic()
        if p.stage == "training" and now - self.last < 2.0 and p.cells_done != p.cells_total:
            return
        self.last = now
        prefix = "\n" if self.tty else ""
        self.stream.write("%s%s: %d/%d cells%s %s\n" % (prefix, p.stage, p.cells_done, p.cells_total, eta, p.message))
        self.stream.flush()


def _write_json(path: str, data: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def handler(args: argparse.Namespace) -> int:
    from abrunnerd.trainer import DatasetError, TrainingStopped, TrainOptions, load_dataset_dir, train

    out = args.out or os.path.join(args.dir, "train-out")
    problem = _check_args(args, out)
    if problem:
        print("abrunnerctl train: %s" % problem, file=sys.stderr)
        return EX_USAGE if not problem.startswith("cannot") else EX_CANTCREAT
    try:
        kwargs = {"seed": args.seed, "filter_type": "artist" if args.artist_filter else None,
                  "normalize": bool(args.normalize)}
        if args.c_values:
            kwargs["c_values"] = tuple(args.c_values)
        if args.gamma_values:
            kwargs["gamma_values"] = tuple(args.gamma_values)
        if args.preprocessing:
            kwargs["preprocessing_values"] = tuple(args.preprocessing)
        opts = TrainOptions(**kwargs)
        ds = load_dataset_dir(args.dir)
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as exc:
            print("abrunnerctl train: cannot create %s: %s" % (out, exc.strerror or exc), file=sys.stderr)
            return EX_CANTCREAT
        result = train(ds, opts, workers=args.jobs or None,
                       checkpoint_path=args.checkpoint or os.path.join(out, "checkpoint.jsonl"),
                       progress=_Reporter(sys.stderr))
    except DatasetError as e:
        print("abrunnerctl train: %s" % terminal(str(e)), file=sys.stderr)
        return EX_DATAERR
    except (ValueError, TypeError, KeyError, RecursionError) as e:  # data of a shape nothing above foresaw
        print("abrunnerctl train: the dataset in %s cannot be trained (%s: %s)"
              % (args.dir, type(e).__name__, terminal(str(e), 300)), file=sys.stderr)
        return EX_DATAERR
    except OSError as e:
        print("abrunnerctl train: %s: %s" % (e.filename or args.dir, e.strerror or e), file=sys.stderr)
        return EX_DATAERR if not e.filename or not str(e.filename).startswith(out) else EX_CANTCREAT
    except (KeyboardInterrupt, TrainingStopped):
        print("\nabrunnerctl train: interrupted; run the same command again to resume", file=sys.stderr)
        return EX_INTERRUPTED
    try:
        written = _write_outputs(out, ds, result)
    except OSError as e:
        print("abrunnerctl train: cannot write into %s: %s" % (out, e.strerror or e), file=sys.stderr)
        return EX_CANTCREAT
    best = result.best
    print("best: %s %s C=2^%d gamma=2^%d, accuracy %.2f %% (%d recordings); wrote %s in %s"
          % (best.preprocessing, best.kernel, best.c, best.gamma, result.accuracy,
             result.dataset_info["n_recordings"], ", ".join(written), out))
    return 0


def _check_args(args: argparse.Namespace, out: str) -> str:
    """One line naming the bad option, or ''."""
    if not 0 <= args.seed <= SEED_MAX:
        return "--seed must be from 0 to %d, not %d" % (SEED_MAX, args.seed)
    if args.jobs < 0:
        return "--jobs must be 0 (all cores) or more, not %d" % args.jobs
    if not os.path.isdir(args.dir):
        return "%s is not a dataset directory" % args.dir if os.path.exists(args.dir) else \
            "%s does not exist" % args.dir
    if os.path.exists(out) and not os.path.isdir(out):
        return "cannot write results into %s: it exists and is not a directory" % out
    if args.checkpoint and os.path.isdir(args.checkpoint):
        return "--checkpoint %s is a directory; give a file name" % args.checkpoint
    return ""


def _write_outputs(out: str, ds: Any, result: Any) -> Any:
    from abrunnerd.trainer.model import slugify

    _write_json(os.path.join(out, "result.json"), result.to_result_json())
    _write_json(os.path.join(out, "predictions.json"), result.model.predict(ds.documents))
    written = ["result.json", "predictions.json"]
    try:
        from abrunnerd.gaia.history import write_history
    except ImportError:
        write_history = None
    if write_history is not None:
        name = (slugify(ds.name) or "model") + ".history"
        write_history(result.model.steps, os.path.join(out, name))
        written.append(name)
    return written
