"""``abrunnerctl train``: run the model search locally on an AB-form directory or Gaia's inputs.

Gaia's inputs (class folders, groundtruth + filelist, a project file) are parsed by
``class_folders``, ``gaia_lists`` and ``gaia_project``; see docs/gaia-users.md.
Writes ``result.json`` (AB's result shape plus the per-combination table),
``predictions.json`` (the final model's class probabilities for every recording),
``<name>.history`` and Gaia's reports (``gaia_reports``) to OUTDIR.  The checkpoint log lives in OUTDIR too, so running the
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
        "train", help="train a dataset locally (AcousticBrainz's / Gaia's SVM model search)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the Gaia-compatible SVM model search locally. Input, one of:\n"
                    "  DIR                         an AcousticBrainz-form directory (dataset.json, lowlevel/<mbid>.json)\n"
                    "  DIR --out OUT               Gaia's train_model_from_sigs form: DIR/<class>/<id>.json|.sig|.yaml\n"
                    "  --groundtruth GT --filelist FL --out OUT   Gaia's train_model form\n"
                    "  --project PROJECT.yaml --out OUT           a Gaia project file (its groundtruth and filelist)\n"
                    "--project also combines with DIR or --groundtruth/--filelist: the grid and the preprocessing\n"
                    "sets then come from the project file. Without a project, Gaia's forms use Gaia's template grid\n"
                    "(6 preprocessing sets x poly/RBF x 9 C x 8 gamma x balanceClasses false/true, seed 1).\n"
                    "Input files are only read. See docs/gaia-users.md.")
    parser.add_argument("dir", metavar="DIR", nargs="?", help="the dataset directory (AB form or class folders)")
    parser.add_argument("--groundtruth", metavar="FILE", help="Gaia groundtruth YAML (with --filelist)")
    parser.add_argument("--filelist", metavar="FILE", help="Gaia filelist YAML: id: path (relative to its folder)")
    parser.add_argument("--project", metavar="FILE", help="Gaia classification project YAML (grid, preprocessing)")
    parser.add_argument("--name", help="class-folder form: the model's name (default: the directory's name)")
    parser.add_argument("--classes", nargs="+", metavar="FOLDER",
                        help="class-folder form: use only these subfolders as classes")
    parser.add_argument("--out", metavar="OUTDIR", help="where results go (default for the AB form: DIR/train-out)")
    parser.add_argument("--c-values", type=int, nargs="+", metavar="EXP", help="C exponents (log2)")
    parser.add_argument("--gamma-values", type=int, nargs="+", metavar="EXP", help="gamma exponents (log2)")
    parser.add_argument("--preprocessing", nargs="+", metavar="NAME",
                        help="preprocessing sets (basic lowlevel nobands normalized gaussianized mfcc raw)")
    parser.add_argument("--balance-classes", nargs="+", choices=("false", "true"), metavar="BOOL",
                        help="Gaia's balanceClasses values to try (false true)")
    parser.add_argument("--artist-filter", action="store_true", help="keep each artist's recordings in one fold")
    parser.add_argument("--normalize", action="store_true", help="reduce every class to the smallest class's size")
    parser.add_argument("--seed", type=int, help="seed of folds and sampling (default: 42 for the AB form, "
                                                 "1 for Gaia's forms, as Gaia's scripts; a project's own seed)")
    parser.add_argument("--jobs", type=int, default=0, metavar="N",
                        help="at most N worker processes (default: all cores; a cost estimate keeps small grids "
                             "in this process)")
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


GAIA_SETS = ("basic", "lowlevel", "nobands", "normalized", "gaussianized", "mfcc")  # the template's grid
GAIA_SEED = 1  # train_model(_from_sigs)'s default --seed


class _Input:
    """What the command line names: the dataset, its form, the project (if any) and the options."""

    def __init__(self, ds: Any, form: str, project: Any, opts: Any, source: str) -> None:
        self.ds, self.form, self.project, self.opts, self.source = ds, form, project, opts, source


def _grid_flags(args: argparse.Namespace) -> dict:
    kwargs = {}
    if args.c_values:
        kwargs["c_values"] = tuple(args.c_values)
    if args.gamma_values:
        kwargs["gamma_values"] = tuple(args.gamma_values)
    if args.preprocessing:
        kwargs["preprocessing_values"] = tuple(args.preprocessing)
    if args.balance_classes:
        kwargs["balance_classes"] = tuple(dict.fromkeys(b == "true" for b in args.balance_classes))
    return kwargs


def read_input(args: argparse.Namespace) -> _Input:
    """Parse the command line's input files into a dataset and options (DatasetError on bad input)."""
    from abrunnerd.trainer import Dataset, DatasetError, TrainOptions, load_dataset_dir
    from abrunnerd.trainer.class_folders import is_class_folder_dir, load_class_folders
    from abrunnerd.trainer.gaia_lists import load_groundtruth_filelist
    from abrunnerd.trainer.gaia_project import read_project
    from abrunnerd.trainer.train import check_groundtruth

    project = read_project(args.project) if args.project else None
    grid = _grid_flags(args)
    if project is not None and grid:
        raise DatasetError("--project %s gives the grid; leave out --c-values, --gamma-values, --preprocessing "
                           "and --balance-classes (or edit the project file)" % args.project)
    if (args.groundtruth is None) != (args.filelist is None):
        raise DatasetError("--groundtruth and --filelist go together; give both")
    if args.groundtruth and args.dir:
        raise DatasetError("give either DIR or --groundtruth/--filelist, not both")
    if args.groundtruth:
        ds, form, source = load_groundtruth_filelist(args.groundtruth, args.filelist), "groundtruth", args.groundtruth
    elif args.dir:
        if os.path.isfile(os.path.join(args.dir, "dataset.json")):
            if project is not None or args.classes or args.name:
                raise DatasetError("%s is an AcousticBrainz-form directory (dataset.json); --project, --classes "
                                   "and --name apply to Gaia's forms only" % args.dir)
            ds, form, source = load_dataset_dir(args.dir), "ab", args.dir
        elif os.path.isdir(args.dir) and is_class_folder_dir(args.dir):
            ds = load_class_folders(args.dir, name=args.name or (project.class_name if project else None),
                                    classes=args.classes)
            form, source = "class-folders", args.dir
        elif not os.path.isdir(args.dir):
            raise DatasetError("%s is not a directory" % args.dir)
        else:
            raise DatasetError("missing file %s: %s is neither an AcousticBrainz-form directory nor a directory of "
                               "class subfolders" % (os.path.join(args.dir, "dataset.json"), args.dir))
    elif project is not None:
        if not project.groundtruth or not project.filelist:
            raise DatasetError("project %s names no groundtruth/filelist; give DIR or --groundtruth/--filelist"
                               % project.path)
        ds, form, source = load_groundtruth_filelist(project.groundtruth, project.filelist), "groundtruth", \
            project.path
    else:
        raise DatasetError("no input: give DIR, --groundtruth FILE --filelist FILE, or --project FILE "
                           "(abrunnerctl train --help)")
    if project is not None and project.class_name:
        # Gaia: the project's className wins over the groundtruth's (a new value: Dataset may be immutable)
        ds = Dataset(name=project.class_name, groundtruth=ds.groundtruth, documents=ds.documents, artists=ds.artists)
    check_groundtruth(ds.groundtruth, ds.documents)  # before any progress output: one line for a bad dataset
    common = {"filter_type": "artist" if args.artist_filter else None, "normalize": bool(args.normalize)}
    if project is not None:
        kwargs = dict(project.options)
        kwargs.update(common)
        if args.seed is not None:
            kwargs["seed"] = args.seed
        kwargs.setdefault("seed", GAIA_SEED)
    elif form == "ab":
        kwargs = dict(common, seed=42 if args.seed is None else args.seed, **grid)
    else:
        kwargs = dict(common, seed=GAIA_SEED if args.seed is None else args.seed, preprocessing_values=GAIA_SETS,
                      balance_classes=(False, True), excluded=("metadata.tags*",))
        kwargs.update(grid)
    return _Input(ds, form, project, TrainOptions(**kwargs), source)


def _output_dir(args: argparse.Namespace, inp: _Input) -> str:
    from abrunnerd.trainer import DatasetError

    if inp.form == "ab":
        return args.out or os.path.join(args.dir, "train-out")
    if not args.out:
        raise DatasetError("give --out OUTDIR: Gaia's forms never write into the input folders")
    if inp.form == "class-folders":
        inside = os.path.abspath(args.out) + os.sep
        if inside.startswith(os.path.abspath(args.dir) + os.sep):
            raise DatasetError("--out %s is inside the class-folder directory %s, where it would become a "
                               "class; put it elsewhere" % (args.out, args.dir))
    return args.out


def handler(args: argparse.Namespace) -> int:
    from abrunnerd.trainer import DatasetError, TrainingStopped, train

    problem = _check_args(args)
    if problem:
        print("abrunnerctl train: %s" % problem, file=sys.stderr)
        return EX_USAGE if not problem.startswith("cannot") else EX_CANTCREAT
    out = args.out or ""
    try:
        inp = read_input(args)
        out = _output_dir(args, inp)
        if os.path.exists(out) and not os.path.isdir(out):
            print("abrunnerctl train: cannot write results into %s: it exists and is not a directory" % out,
                  file=sys.stderr)
            return EX_CANTCREAT
        ds, opts = inp.ds, inp.opts
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
              % (_source(args), type(e).__name__, terminal(str(e), 300)), file=sys.stderr)
        return EX_DATAERR
    except OSError as e:
        print("abrunnerctl train: %s: %s" % (e.filename or _source(args), e.strerror or e), file=sys.stderr)
        return EX_DATAERR if not e.filename or not out or not str(e.filename).startswith(out) else EX_CANTCREAT
    except (KeyboardInterrupt, TrainingStopped):
        print("\nabrunnerctl train: interrupted; run the same command again to resume", file=sys.stderr)
        return EX_INTERRUPTED
    try:
        written = _write_outputs(out, ds, result, inp)
    except OSError as e:
        print("abrunnerctl train: cannot write into %s: %s" % (out, e.strerror or e), file=sys.stderr)
        return EX_CANTCREAT
    best = result.best
    info = result.dataset_info
    if "merge_removed_variable_length" in info:
        print("merge: removed %d variable-length descriptor(s) (%s) and %d constant one(s); result.json lists them"
              % (len(info["merge_removed_variable_length"]),
                 terminal(", ".join(info["merge_removed_variable_length"][:3])), len(info["merge_removed_constant"])))
    balance = "" if best.balance_classes is None else " balanceClasses=%s" % best.balance_classes
    print("best: %s %s C=2^%d gamma=2^%d%s, accuracy %.2f %% (%d recordings, template %s); wrote %s in %s"
          % (terminal(best.preprocessing), best.kernel, best.c, best.gamma, balance, result.accuracy,
             info["n_recordings"], info["template"], ", ".join(written), terminal(out)))
    return 0


def _source(args: argparse.Namespace) -> str:
    return args.dir or args.groundtruth or args.project or "the input"


def _check_args(args: argparse.Namespace) -> str:
    """One line naming the bad option, or ''."""
    if args.seed is not None and not 0 <= args.seed <= SEED_MAX:
        return "--seed must be from 0 to %d, not %d" % (SEED_MAX, args.seed)
    if args.jobs < 0:
        return "--jobs must be 0 (all cores) or more, not %d" % args.jobs
    if args.dir is not None and not os.path.isdir(args.dir):
        return "%s is not a dataset directory" % args.dir if os.path.exists(args.dir) else \
            "%s does not exist" % args.dir
    if args.checkpoint and os.path.isdir(args.checkpoint):
        return "--checkpoint %s is a directory; give a file name" % args.checkpoint
    return ""


def _write_outputs(out: str, ds: Any, result: Any, inp: "_Input") -> Any:
    from abrunnerd.trainer.gaia_reports import project_document, write_reports
    from abrunnerd.trainer.model import slugify

    _write_json(os.path.join(out, "result.json"), result.to_result_json())
    _write_json(os.path.join(out, "predictions.json"), result.model.predict(ds.documents))
    written = ["result.json", "predictions.json"]
    try:
        from abrunnerd.gaia.history import write_history
    except ImportError:
        write_history = None
    name = (slugify(ds.name) or "model") + ".history"
    if write_history is not None:
        write_history(result.model.steps, os.path.join(out, name))
        written.append(name)
    project = project_document(inp.opts, ds.name, result.dataset_info["template"],
                               inp.project.groundtruth if inp.project else None,
                               inp.project.filelist if inp.project else None)
    written += write_reports(out, result, inp.opts, ds.name, name, inp.source, project, _write_text)
    return written


def _write_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
