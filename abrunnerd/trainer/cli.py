"""``abrunnerctl train DIR``: run the model search locally on an AB-form directory.

Writes ``result.json`` (AB's result shape plus the per-combination table),
``predictions.json`` (the final model's class probabilities for every recording) and
``<name>.history`` to OUTDIR.  The checkpoint log lives in OUTDIR too, so running the
same command again after an interruption resumes where it stopped.
Exit status: 0 done, 65 (EX_DATAERR) the dataset or options cannot be trained,
130 interrupted (checkpoint kept).
"""
import argparse
import json
import os
import sys
import time
from typing import Any

EX_DATAERR = 65
EX_INTERRUPTED = 130


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
    parser.add_argument("--jobs", type=int, default=0, metavar="N", help="at most N worker processes (default: all cores; a cost estimate keeps small grids in this process)")
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
    from abrunnerd.trainer.model import slugify

    out = args.out or os.path.join(args.dir, "train-out")
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
        os.makedirs(out, exist_ok=True)
        result = train(ds, opts, workers=args.jobs or None,
                       checkpoint_path=args.checkpoint or os.path.join(out, "checkpoint.jsonl"),
                       progress=_Reporter(sys.stderr))
    except DatasetError as e:
        print("abrunnerctl train: %s" % e, file=sys.stderr)
        return EX_DATAERR
    except (KeyboardInterrupt, TrainingStopped):
        print("\nabrunnerctl train: interrupted; run the same command again to resume", file=sys.stderr)
        return EX_INTERRUPTED
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
    best = result.best
    print("best: %s %s C=2^%d gamma=2^%d, accuracy %.2f %% (%d recordings); wrote %s in %s"
          % (best.preprocessing, best.kernel, best.c, best.gamma, result.accuracy,
             result.dataset_info["n_recordings"], ", ".join(written), out))
    return 0
