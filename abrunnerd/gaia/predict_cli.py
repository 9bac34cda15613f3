"""``abrunnerctl predict MODEL.history [--model M2.history ...] INPUT...``: apply Gaia models to documents.

Writes, per document, the high-level shape Essentia's extractor and AcousticBrainz give
(``{"highlevel": {"<model>": {"value", "probability", "all"}}}``): as JSON Lines on
standard output (each line also carries ``"input"``), or as one JSON file per input
file under ``--out DIR``.  Documents stream through in batches, so memory stays
constant on any number of them; ``--jobs N`` spreads batches over N processes.

Exit status: 0 every document predicted; 3 some documents could not be predicted (each
reported on stderr and, on stdout, as ``{"input", "error"}``; the others are written);
64 usage; 65 a model is not a valid Gaia history or cannot be applied; 66 a model file
cannot be read; 70 out of memory; 73 an output cannot be written; 130/143 interrupted
(SIGINT/SIGTERM).
"""
import argparse
import collections
import json
import os
import signal
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

EX_OK, EX_DOCUMENTS, EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_SOFTWARE, EX_CANTCREAT = 0, 3, 64, 65, 66, 70, 73
BATCH = 256
MAX_JOBS = 64
PROG = "abrunnerctl predict"


def register(subparsers: "argparse._SubParsersAction") -> None:
    parser = subparsers.add_parser(
        "predict", help="apply Gaia .history models to low-level documents (no Essentia needed)",
        description="Apply one or more Gaia classification models (.history files: abrunnerd's, "
                    "AcousticBrainz's, Gaia's own) to low-level documents, as Essentia's GaiaTransform "
                    "would, and print the high-level result per document.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="INPUT is an AB/Essentia low-level JSON file, an Essentia YAML file (.yaml/.yml), a\n"
               "directory (its *.json/*.yaml/*.yml files, recursively, sorted) or '-' (JSON Lines on\n"
               "standard input, one document per line).\n\n"
               "exit status:\n"
               "  0   every document predicted\n"
               "  3   some documents could not be predicted (each named on stderr; the rest written)\n"
               "  64  usage error\n"
               "  65  a model is invalid or cannot be applied (named with transformation and applier)\n"
               "  66  a model file cannot be read\n"
               "  70  out of memory (try a smaller --batch)\n"
               "  73  an output cannot be written\n"
               "  130, 143  interrupted by SIGINT, SIGTERM\n\n"
               "See docs/predict.md and abrunnerctl(1).")
    parser.add_argument("model", metavar="MODEL.history", help="a Gaia classification history")
    parser.add_argument("inputs", metavar="INPUT", nargs="+", help="document file, directory, or - for JSON Lines")
    parser.add_argument("--model", dest="more_models", metavar="M.history", action="append", default=[],
                        help="another model to apply to the same documents (repeatable)")
    parser.add_argument("--out", metavar="DIR", help="write one JSON per input file into DIR "
                        "(directory inputs keep their relative paths; stdin line N -> stdin-N.json) "
                        "instead of JSON Lines on standard output")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="worker processes (1..%d, default 1)" % MAX_JOBS)
    parser.add_argument("--batch", type=int, default=BATCH, metavar="N",
                        help="documents per batch (1..10000, default %d)" % BATCH)
    parser.add_argument("--quiet", action="store_true", help="no progress line on a terminal")
    parser.set_defaults(handler=handler)


def _err(message: str) -> None:
    sys.stderr.write("%s: %s\n" % (PROG, message.replace("\n", " ")))
    sys.stderr.flush()


# --- models --------------------------------------------------------------------------

def load_models(paths: Sequence[str]) -> List[Any]:
    from abrunnerd.gaia.apply import load_model

    models = [load_model(p) for p in paths]
    seen = {}  # type: Dict[Tuple[str, ...], str]
    for path, model in zip(paths, models):
        key = model.output_path()
        for other_key, other in seen.items():
            shorter = min(len(key), len(other_key))
            if key[:shorter] == other_key[:shorter]:
                from abrunnerd.gaia.apply import ModelError
                raise ModelError("%s and %s both write %s (Essentia: \"trying to overwrite\")"
                                 % (other, path, ".".join(key)))
        seen[key] = path
    return models


_WORKER_MODELS = None  # type: Optional[List[Any]]


def _init_worker(paths: Sequence[str]) -> None:
    global _WORKER_MODELS
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # and ends workers with SIGTERM (pool.terminate)
    _WORKER_MODELS = load_models(paths)


def _worker_batch(sources: List[Any]) -> List[Tuple[Any, Any]]:
    assert _WORKER_MODELS is not None
    return predict_batch(_WORKER_MODELS, sources)


def predict_batch(models: Sequence[Any], sources: Sequence[Any]) -> List[Tuple[Any, Any]]:
    """[(source, {"highlevel": ...} or error message)] for one batch; never raises for a document."""
    from abrunnerd.documents import DocumentError, load_source
    from abrunnerd.gaia.apply import DocumentError as MapError
    from abrunnerd.gaia.apply import predict_many

    docs, out = [], []  # type: List[Any], List[Any]
    for source in sources:
        try:
            docs.append(load_source(source))
            out.append([source, {}])
        except DocumentError as exc:
            docs.append(None)
            out.append([source, str(exc)])
    index = [i for i, (_, r) in enumerate(out) if isinstance(r, dict)]
    for model, results in zip(models, predict_many(models, [docs[i] for i in index])):
        for i, result in zip(index, results):
            if not isinstance(out[i][1], dict):
                continue  # an earlier model already failed on this document
            if isinstance(result, MapError):
                out[i][1] = "model %s: %s" % (model.name, result)
                continue
            node = out[i][1]
            path = model.output_path()
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = result.as_json()
    return [(s, r) for s, r in out]


# --- output --------------------------------------------------------------------------

class Output(object):
    """JSON Lines on stdout, or one file per document under ``--out``."""

    def __init__(self, out_dir: Optional[str]) -> None:
        self.out_dir = out_dir
        # A file this run wrote has an mtime from this run: two inputs with the same output name
        # are found without remembering every name (memory stays constant on any number of files).
        self.started = time.time() - 0.05  # file times come from a coarser kernel clock

    def target(self, source: Any) -> str:
        if source.path is None:
            rel = "stdin-%d.json" % source.line
        else:
            rel = os.path.splitext(source.relative)[0] + ".json"
        parts = [p for p in rel.replace(os.sep, "/").split("/") if p not in ("", ".", "..")]
        return os.path.join(self.out_dir or ".", *parts)

    def write(self, source: Any, result: Any) -> Optional[str]:
        """None, or the error message of this document (its own or a write failure)."""
        if self.out_dir is None:
            line = {"input": source.name}
            line.update(result if isinstance(result, dict) else {"error": result})
            sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")  # ASCII: safe in any locale (3.6 + LANG=C)
            return None if isinstance(result, dict) else result
        if not isinstance(result, dict):
            return result
        from abrunnerd.atomic import write_bytes

        path = self.target(source)
        try:
            if os.stat(path).st_mtime >= self.started:
                return "another input of this run already wrote %s; give such inputs in separate runs" % path
        except FileNotFoundError:
            pass
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_bytes(path, (json.dumps(result, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8"),
                    mode=0o644)
        return None


class Progress(object):
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.time()
        self.last = 0.0
        self.done = self.failed = 0

    def update(self, done: int, failed: int, final: bool = False) -> None:
        self.done += done
        self.failed += failed
        now = time.time()
        if self.enabled and (final or now - self.last > 0.2):
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            sys.stderr.write("\r%s: %d documents, %d failed, %.0f documents/s%s"
                             % (PROG, self.done, self.failed, rate, "\n" if final else ""))
            sys.stderr.flush()


def _batches(sources: Any, size: int) -> Any:
    batch = []
    for source in sources:
        batch.append(source)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


_TERMINATED = []  # type: List[int]


def _terminate(signum: int, frame: Any) -> None:
    _TERMINATED.append(signum)
    raise KeyboardInterrupt


def handler(args: argparse.Namespace) -> int:
    from abrunnerd.documents import DocumentError, expand_inputs
    from abrunnerd.gaia.apply import ModelError
    from abrunnerd.gaia.history import HistoryError

    if not 1 <= args.jobs <= MAX_JOBS or not 1 <= args.batch <= 10000:
        _err("--jobs must be 1..%d and --batch 1..10000" % MAX_JOBS)
        return EX_USAGE
    if args.inputs.count("-") > 1:
        _err("'-' (standard input) can be given once")
        return EX_USAGE
    paths = [args.model] + list(args.more_models)
    try:
        models = load_models(paths)
    except OSError as exc:
        _err("cannot read model %s: %s" % (getattr(exc, "filename", None) or "?", exc.strerror or exc))
        return EX_NOINPUT
    except (HistoryError, ModelError) as exc:
        _err(str(exc))
        return EX_DATAERR
    if args.out is not None:
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as exc:
            _err("cannot create output directory %s: %s" % (args.out, exc.strerror or exc))
            return EX_CANTCREAT
    output = Output(args.out)
    progress = Progress(sys.stderr.isatty() and not args.quiet)
    previous = signal.signal(signal.SIGTERM, _terminate)
    status = EX_OK
    pool = None
    try:
        stdin = sys.stdin.buffer if "-" in args.inputs else None
        batches = _batches(expand_inputs(args.inputs, stdin), args.batch)
        if args.jobs == 1:
            results = (predict_batch(models, b) for b in batches)
        else:
            import multiprocessing

            pool = multiprocessing.Pool(args.jobs, _init_worker, (paths,))
            results = _bounded_map(pool, batches, 2 * args.jobs)
        for batch_result in results:
            failed = 0
            for source, result in batch_result:
                try:
                    error = output.write(source, result)
                except BrokenPipeError:
                    raise
                except OSError as exc:
                    _err("cannot write the result of %s: %s" % (source.name, exc.strerror or exc))
                    return EX_CANTCREAT
                if error is not None:
                    failed += 1
                    _err("%s: %s" % (source.name, error))
            if failed:
                status = EX_DOCUMENTS
            progress.update(len(batch_result), failed)
            sys.stdout.flush()
        progress.update(0, 0, final=True)
        if progress.done == 0:
            _err("no documents found in %s (directories are searched for *.json, *.yaml, *.yml)"
                 % ", ".join(args.inputs))
    except DocumentError as exc:
        _err(str(exc))
        return EX_USAGE
    except KeyboardInterrupt:
        _err("interrupted; the documents listed so far are written")
        return 143 if _TERMINATED else 130
    except MemoryError:
        _err("out of memory; try a smaller --batch")
        return EX_SOFTWARE
    except BrokenPipeError:  # the reader of stdout went away (e.g. | head): stop quietly
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return status
    finally:
        signal.signal(signal.SIGTERM, previous)
        if pool is not None:
            pool.terminate()
            pool.join()
    return status


def _bounded_map(pool: Any, batches: Any, window: int) -> Any:
    """``pool.imap`` that reads at most ``window`` batches ahead (imap would read all input first)."""
    pending = collections.deque()  # type: collections.deque
    for batch in batches:
        pending.append(pool.apply_async(_worker_batch, (batch,)))
        while pending and (len(pending) >= window or pending[0].ready()):
            yield pending.popleft().get()  # in order; finished heads go out before reading on
    while pending:
        yield pending.popleft().get()
