"""``abserver``: the job server's admin commands and ``serve``."""
import argparse
import json
import logging
import os
import sys
from typing import List, Optional

from sqlalchemy import exc as sa_exc

from . import __version__, settings
from .config import MAX_QUOTA_BYTES, ServerConfig
from .datasets import DatasetError
from .db import DEFAULT_URL, make_engine
from .errors import ApiError
from .migrations import MigrationError, current_version, latest_version, upgrade
from .options import OptionsError
from .text import canonical_uuid, sanitize
from .timefmt import http_date
from .users import (UserError, add_user, list_users, revoke_token, rotate_token, set_disabled,
                    user_id_by_name)

EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_CONFIG = 64, 65, 69, 78


def _db(args) -> str:
    return args.db or os.environ.get("ABSERVER_DB") or DEFAULT_URL


def _db_hint(args) -> str:
    """What to check when the database cannot be opened: for SQLite, its directory."""
    url = _db(args)
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            return ("the directory %s does not exist: install the abserver package (it creates "
                    "/var/lib/abserver), create it, or give --db" % folder)
        if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            return ("%s is not writable by you: run it as the service user "
                    "('sudo -u abserver abserver ...') or give --db" % (path if os.path.exists(path) else folder))
    return "check --db / $ABSERVER_DB / db in %s and that the database is up" % settings.config_path()


def _engine(args):
    engine = make_engine(_db(args))
    if current_version(engine) != latest_version():
        raise MigrationError("database is at schema version %d, not %d: run 'abserver init-db' first"
                             % (current_version(engine), latest_version()))
    return engine


def cmd_init_db(args) -> int:
    applied = upgrade(make_engine(_db(args)))
    print("schema at version %d%s" % (latest_version(), " (applied %s)" % applied if applied else ""))
    return 0


def cmd_add_user(args) -> int:
    token = add_user(_engine(args), args.name)
    print(token)
    print("user %s created; this token is shown only now: put it in /etc/abrunnerd/token" % args.name,
          file=sys.stderr)
    return 0


def _user_command(args, action) -> int:
    engine = _engine(args)
    with engine.begin() as conn:
        return action(conn, user_id_by_name(conn, args.name))


def cmd_rotate_token(args) -> int:
    token = _user_command(args, rotate_token)
    print(token)
    print("new token for %s (the old one answers 401 from now on); shown only now: put it in "
          "/etc/abrunnerd/token" % args.name, file=sys.stderr)
    return 0


def cmd_revoke_token(args) -> int:
    _user_command(args, revoke_token)
    print("token of %s revoked: it answers 401 from now on ('abserver rotate-token %s' issues a new one)"
          % (args.name, args.name), file=sys.stderr)
    return 0


def cmd_disable_user(args) -> int:
    _user_command(args, lambda conn, uid: set_disabled(conn, uid, not args.enable))
    print("user %s %s" % (args.name, "enabled" if args.enable else "disabled: every request with its token "
                          "answers 401"), file=sys.stderr)
    return 0


def cmd_users(args) -> int:
    from .quota import usage

    with _engine(args).connect() as conn:
        for row in list_users(conn):
            state = "disabled" if row.disabled_at else ("token revoked" if row.token_revoked else "active")
            print("%-24s %-14s created %s, token changed %s, %s" % (
                row.name, state, http_date(row.created), http_date(row.token_changed) or "-",
                _stored(usage(conn, row.id), args.quota_bytes)))
    return 0


def _stored(used, quota_bytes: int) -> str:
    """'stores 12.3 MB of 2147.5 MB (1%: documents …)': the owner's usage against the quota."""
    parts = ", ".join("%s %s" % (kind, _mb(n)) for kind, n in used._asdict().items())
    if not quota_bytes:
        return "stores %s (%s; no quota)" % (_mb(used.total), parts)
    return "stores %s of %s (%d%%: %s)" % (_mb(used.total), _mb(quota_bytes), 100 * used.total // quota_bytes, parts)


def _mb(n: int) -> str:
    return "%.1f MB" % (n / 1e6)


def cmd_import_dataset(args) -> int:
    engine = _engine(args)
    with engine.connect() as conn:
        owner_id = user_id_by_name(conn, args.owner)
    from .gaia_import import import_from_args  # imports the trainer's readers (numpy): only here

    report, names = import_from_args(engine, args, owner_id)  # AB form, class folders, groundtruth/filelist
    print(report.dataset_id)
    for mbid, action in sorted(report.actions.items()):
        if action != "stored" or args.verbose:
            key = " (%s)" % sanitize(names[mbid]) if mbid in names else ""
            print("  %s%s  %s" % (mbid, key, IMPORT_ACTIONS[action]), file=sys.stderr)
    missing = report.count("missing")
    print("imported %d low-level documents of %s (%d new, %d replaced %s's previous ones, %d unchanged)%s" % (
        report.count("stored", "replaced", "unchanged"), args.owner, report.count("stored"),
        report.count("replaced"), args.owner, report.count("unchanged"),
        "; %d recordings have no document, evaluation will refuse them until %s uploads them"
        % (missing, args.owner) if missing else ""), file=sys.stderr)
    return 0


IMPORT_ACTIONS = {"stored": "stored", "replaced": "replaced the owner's previous document",
                  "unchanged": "unchanged (the owner's stored document is the same)",
                  "missing": "no document in lowlevel/: not imported"}


class _StageProgress:
    """Progress of a long dataset operation on stderr: a line per stage and at most one a second
    (a redrawn line on a terminal, so a 20,000-recording submit does not scroll)."""

    def __init__(self, stream) -> None:
        import time
        self._clock = time.monotonic
        self._stream = stream
        self._tty = stream.isatty()
        self._stage = None
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = self._clock()
        new_stage = stage != self._stage
        if not (new_stage or done >= total or now - self._last >= 1.0):
            return
        if new_stage and self._stage is not None and self._tty:
            self._stream.write("\n")
        self._stage, self._last = stage, now
        pct = 100 * done // total if total else 100
        line = "abserver: %s: %d/%d (%d%%)" % (stage, done, total, pct)
        self._stream.write(("\r" + line) if self._tty else (line + "\n"))
        if self._tty and done >= total:
            self._stream.write("\n")
            self._stage = None
        self._stream.flush()


def cmd_submit(args) -> int:
    from . import jobs as job_store
    from .tables import datasets, jobs

    import sqlalchemy as sa

    options = {}
    if args.c_values is not None:
        options["c_values"] = args.c_values
    if args.gamma_values is not None:
        options["gamma_values"] = args.gamma_values
    if args.preprocessing is not None:
        options["preprocessing_values"] = args.preprocessing
    if args.artist_filter:
        options["filter_type"] = "artist"
    if args.normalize:
        options["normalize"] = True
    import time

    from . import builder

    engine = _engine(args)
    t0 = time.monotonic()
    dataset_id = canonical_uuid(args.dataset_id)
    with engine.connect() as conn:
        row = conn.execute(sa.select(datasets.c.owner_id).where(datasets.c.id == dataset_id)).first() \
            if dataset_id else None
    if row is None:
        raise DatasetError("no dataset %s (see the id printed by import-dataset)" % sanitize(args.dataset_id))
    # This command is no request worker: it builds the snapshot itself, through the same code
    # as the server's builder (the job is queued already leased to this process, so no builder
    # takes it meanwhile; if this process dies, the lease runs out and a builder does).
    builder_id = builder.new_builder_id("submit")
    job_id = job_store.submit(engine, dataset_id, row.owner_id, "local" if args.local else "remote",
                              options, args.seed, build_owner=builder_id, build_lease=builder.LEASE_SECONDS,
                              quota_bytes=args.quota_bytes)
    with engine.connect() as conn:
        job = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
    # Freezing the snapshot (and its features bundle) takes a minute on large datasets: show how far.
    print("abserver: job %s: freezing a snapshot of dataset %s and building its features bundle ..."
          % (job_id, dataset_id), file=sys.stderr, flush=True)
    try:
        outcome = builder.build_job(engine, job, builder_id, progress=_StageProgress(sys.stderr),
                                     quota_bytes=args.quota_bytes)
    except KeyboardInterrupt:
        with engine.begin() as conn:
            job_store.cancel(conn, job_id, row.owner_id)
        print("abserver: interrupted; job %s canceled" % job_id, file=sys.stderr)
        return 130
    if outcome != "pending":
        with engine.connect() as conn:
            job = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        print("abserver: job %s %s: %s" % (job_id, job.status, sanitize(job.status_msg or "-", 2000)),
              file=sys.stderr)
        return EX_DATAERR
    print("abserver: job queued in %.1f s" % (time.monotonic() - t0), file=sys.stderr)
    print(job_id)
    return 0


def cmd_build_worker(args) -> int:
    """Build queued jobs' snapshots (``serve`` runs this itself; see docs/server.md)."""
    from . import builder

    engine = _engine(args)
    worker = builder.Worker(engine, args.builder_id or None, args.build_lease_seconds, args.build_poll,
                            quota_bytes=args.quota_bytes)
    worker.install_signals()
    built = worker.run(once=args.once, recover=args.recover or [])
    if args.once:
        print("abserver: built %d job(s)" % built, file=sys.stderr)
    return 0


def cmd_jobs(args) -> int:
    from . import jobs as job_store
    from .leases import effective_status
    from .timefmt import now

    engine = _engine(args)
    with engine.connect() as conn:
        rows = job_store.all_jobs(conn)
    ts = now()
    fmt = "%-36s  %-9s %-6s %-29s  %-16s  %s"
    print(fmt % ("JOB", "STATUS", "WHERE", "SUBMITTED", "RUNNER", "PROGRESS"))
    for row in rows:
        status = effective_status(row, ts)
        print(fmt % (row.id, status, row.eval_location, http_date(row.created),
                     sanitize(row.runner_name or "-", 64), _progress_column(status, row.progress)))
        if status == "failed" and row.error_code:  # a failed build: say why
            print("    %s" % sanitize(row.status_msg or row.error_code, 300))
    return 0


def _progress_column(status: str, raw) -> str:
    """Only a running job's last ping (or a preparing job's build progress) is its progress;
    a finished job's last ping is stale."""
    if status == "preparing":
        try:
            return "building " + sanitize(json.loads(raw).get("message") or "", 40) if raw else "queued to build"
        except (ValueError, AttributeError):
            return "?"
    if status != "running" or not raw:
        return "-"
    try:
        p = json.loads(raw)
        stage, done, total = sanitize(p.get("stage") or "?", 12), int(p.get("cells_done") or 0), \
            int(p.get("cells_total") or 0)
    except (ValueError, TypeError, AttributeError):
        return "?"
    if not total:
        return stage
    return "%s %d%% (%d/%d)" % (stage, 100 * done // total, done, total)


def _listen(value: str):
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError("--bind must be HOST:PORT (port 0 picks a free one), got %r" % value)
    return host.strip("[]"), int(port)


def config_from_args(args) -> ServerConfig:
    return ServerConfig(lease_seconds=args.lease_seconds, ping_interval=args.ping_interval,
                        stall_seconds=args.stall_seconds, spot_check_cells=args.spot_check_cells,
                        spot_check_max_recordings=args.spot_check_max_recordings,
                        spot_check_tolerance=args.spot_check_tolerance,
                        max_result_bytes=args.max_result_bytes, max_model_bytes=args.max_model_bytes,
                        quota_bytes=args.quota_bytes)


def cmd_serve(args) -> int:
    """gunicorn (threads, timeouts, request limits); the Flask development server only with --dev."""
    from .app import create_app

    upgrade(make_engine(_db(args)))
    config = config_from_args(args)
    config.validate()
    db_url = _db(args)
    host, port = args.bind
    builders = _builder_spec(args, db_url)
    if args.dev:
        import subprocess

        from werkzeug.serving import make_server

        server = make_server(host, port, create_app(db_url, config), threaded=True)
        procs = [subprocess.Popen(builders.argv("dev-builder-%d" % i, []), env=builders.env)
                 for i in range(builders.count)]

        def _stop(_signum, _frame):
            raise KeyboardInterrupt  # SIGTERM stops the build workers too (below)

        import signal

        signal.signal(signal.SIGTERM, _stop)
        print("abserver %s (development server, --dev) listening on http://%s:%d/api/v1/"
              % (__version__, host, server.server_port), flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()
        return 0
    from .serving import GunicornServer, gunicorn_options

    os.environ["ABSERVER_CLIENT_TIMEOUT"] = str(args.client_timeout)  # read by the workers
    from .context import ENGINE_KEY

    # Refuse a bad schema or setting here, once, not in every worker; the workers open
    # their own connections (none is inherited across the fork).
    create_app(db_url, config).extensions[ENGINE_KEY].dispose()
    bind = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    options = gunicorn_options(bind, args.workers, args.threads, args.timeout, args.graceful_timeout,
                               args.keep_alive, args.max_requests)
    print("abserver %s starting gunicorn on %s (%d workers x %d threads, timeout %d s) and %d build worker(s)"
          % (__version__, bind, args.workers, args.threads, args.timeout, builders.count), flush=True)
    GunicornServer(lambda: create_app(db_url, config), options, builders).run()
    return 0


def _builder_spec(args, db_url: str):
    """The build workers ``serve`` runs: ``abserver build-worker`` processes with serve's database
    (in the environment, not on the command line where ``ps`` shows a password) and settings."""
    import sys as _sys

    from .serving import BuilderSpec

    env = dict(os.environ, ABSERVER_DB=db_url)
    if getattr(args, "config", None):
        env["ABSERVER_CONFIG"] = os.path.abspath(args.config)

    def argv(builder_id: str, dead: List[str]) -> List[str]:
        out = [_sys.executable, "-m", "abserver", "build-worker", "--builder-id", builder_id,
               "--build-poll", str(args.build_poll), "--build-lease-seconds", str(args.build_lease_seconds),
               "--quota-bytes", str(args.quota_bytes)]
        for dead_id in dead:
            out += ["--recover", dead_id]
        return out

    return BuilderSpec(args.builders, argv, env)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= 10000:
        raise argparse.ArgumentTypeError("must be an integer from 1 to 10000, got %r" % value)
    return number


def _builder_id(value: str) -> str:
    """A build worker's id as ``serve`` makes them (it is stored in jobs.build_owner, 64 characters)."""
    if not 1 <= len(value) <= 64 or not all(33 <= ord(c) < 127 for c in value):
        raise argparse.ArgumentTypeError("must be 1 to 64 printable ASCII characters without spaces")
    return value


def _count(value: str) -> int:
    if not value.isdigit() or int(value) > 16:
        raise argparse.ArgumentTypeError("must be an integer from 0 to 16, got %r" % value)
    return int(value)


def _bounded(kind, low, high):
    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise argparse.ArgumentTypeError("must be a number from %s to %s, got %r" % (low, high, value))
        return number
    return parse


def add_build_options(p: argparse.ArgumentParser) -> None:
    from . import builder

    p.add_argument("--build-poll", type=_bounded(float, builder.MIN_POLL_SECONDS, builder.MAX_POLL_SECONDS),
                   default=builder.POLL_SECONDS, metavar="S",
                   help="seconds between looks for jobs to build when idle, %s to %s (default %%(default)s)"
                   % (builder.MIN_POLL_SECONDS, builder.MAX_POLL_SECONDS))
    p.add_argument("--build-lease-seconds", type=_bounded(int, builder.MIN_LEASE_SECONDS,
                                                          builder.MAX_LEASE_SECONDS),
                   default=builder.LEASE_SECONDS, metavar="S",
                   help="a build not renewed for this long is taken by another builder, %d to %d "
                   "(default %%(default)s)" % (builder.MIN_LEASE_SECONDS, builder.MAX_LEASE_SECONDS))


def _quota(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= MAX_QUOTA_BYTES:
        raise argparse.ArgumentTypeError("must be a number of bytes from 0 (no quota) to %d, got %r"
                                         % (MAX_QUOTA_BYTES, value))
    return number


def add_quota_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quota-bytes", type=_quota, default=ServerConfig().quota_bytes,
                   help="bytes each owner may store: documents, features bundles, datasets, results and "
                   "models (default %(default)s, or quota_bytes in the settings file; 0: no quota)")


def add_timing_options(p: argparse.ArgumentParser) -> None:
    d = ServerConfig()
    p.add_argument("--lease-seconds", type=int, default=d.lease_seconds, help="lease length (default %(default)s)")
    p.add_argument("--ping-interval", type=int, default=d.ping_interval, help="ping pace asked of runners")
    p.add_argument("--stall-seconds", type=int, default=d.stall_seconds,
                   help="cells_done frozen this long while training => stalled")
    p.add_argument("--spot-check-cells", type=int, default=d.spot_check_cells,
                   help="grid cells recomputed per upload; 0 disables (default %(default)s)")
    p.add_argument("--spot-check-max-recordings", type=int, default=d.spot_check_max_recordings,
                   help="larger datasets are not spot-checked (default %(default)s)")
    p.add_argument("--spot-check-tolerance", type=float, default=d.spot_check_tolerance,
                   help="max fold-accuracy difference, as a fraction (default %(default)s)")
    p.add_argument("--max-result-bytes", type=int, default=d.max_result_bytes, help="result JSON size limit")
    p.add_argument("--max-model-bytes", type=int, default=d.max_model_bytes, help="model file size limit")
    add_quota_option(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="abserver", description="The abrunnerd reference job server.")
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--config", metavar="PATH",
                        help="settings file (default $ABSERVER_CONFIG or %s; flags win over it)"
                        % settings.DEFAULT_PATH)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="database URL (default $ABSERVER_DB or %s)" % DEFAULT_URL)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init-db", parents=[common], help="create or upgrade the schema").set_defaults(func=cmd_init_db)
    p = sub.add_parser("add-user", parents=[common], help="create a user; prints its token once")
    p.add_argument("name")
    p.set_defaults(func=cmd_add_user)
    for name, func, text in (("rotate-token", cmd_rotate_token, "give a user a new token (prints it once); "
                              "the old one stops working at once"),
                             ("revoke-token", cmd_revoke_token, "make a user's token stop working at once")):
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.add_argument("name")
        p.set_defaults(func=func)
    p = sub.add_parser("disable-user", parents=[common], help="refuse (401) every request of a user",
                       description="Refuse (401 user_disabled) every request of a user; --enable undoes it.")
    p.add_argument("name")
    p.add_argument("--enable", action="store_true", help="enable the user again")
    p.set_defaults(func=cmd_disable_user)
    p = sub.add_parser("users", parents=[common], help="list users, their state and stored bytes")
    add_quota_option(p)
    p.set_defaults(func=cmd_users)
    p = sub.add_parser("import-dataset", parents=[common], help="import an AB-form dataset directory, Gaia "
                       "class folders, or a Gaia groundtruth + filelist (docs/gaia-users.md)")
    p.add_argument("dir", nargs="?", help="AB-form directory (dataset.json) or class folders (DIR/<class>/<id>.json)")
    p.add_argument("--groundtruth", metavar="FILE", help="Gaia groundtruth YAML (with --filelist)")
    p.add_argument("--filelist", metavar="FILE", help="Gaia filelist YAML (paths relative to its folder)")
    p.add_argument("--name", help="the dataset's name (default: the folder's name or the groundtruth's className)")
    p.add_argument("--classes", nargs="+", metavar="FOLDER", help="class folders: only these subfolders")
    p.add_argument("--owner", required=True)
    add_quota_option(p)
    p.add_argument("--verbose", action="store_true", help="list every recording, also the newly stored ones")
    p.set_defaults(func=cmd_import_dataset)
    p = sub.add_parser("submit", parents=[common], help="queue an evaluation job; prints its id")
    p.add_argument("dataset_id", help="the id import-dataset printed")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--remote", action="store_true", help="for a runner (the default)")
    where.add_argument("--local", action="store_true", help="eval_location local (not claimable)")
    from .options import DEFAULTS as GRID, KERNELS, MAX_EXPONENT, MAX_VALUES, PREPROCESSING

    p.description = ("Queue an evaluation job on the dataset (AcousticBrainz's options and defaults). "
                     "The grid is every preprocessing x kernel (%s) x C x gamma, each trained with "
                     "5-fold cross-validation." % " and ".join(KERNELS))
    p.add_argument("--c-values", type=int, nargs="+", metavar="EXP",
                   help="SVM C values as log2 exponents, at most %d, each within +-%d (default: %s)"
                   % (MAX_VALUES, MAX_EXPONENT, " ".join(map(str, GRID["c_values"]))))
    p.add_argument("--gamma-values", type=int, nargs="+", metavar="EXP",
                   help="RBF/poly gamma values as log2 exponents, at most %d, each within +-%d "
                   "(default: %s)" % (MAX_VALUES, MAX_EXPONENT, " ".join(map(str, GRID["gamma_values"]))))
    p.add_argument("--preprocessing", nargs="+", metavar="NAME",
                   help="Gaia preprocessings to try, any of: %s (default: all)" % " ".join(PREPROCESSING))
    p.add_argument("--artist-filter", action="store_true",
                   help="keep each artist's recordings in one cross-validation fold (default: off)")
    p.add_argument("--normalize", action="store_true",
                   help="AB's 'normalize' option: balance the classes' sizes first (default: off)")
    p.add_argument("--seed", type=int, default=42, help="fold assignment seed (default %(default)s)")
    add_quota_option(p)
    p.set_defaults(func=cmd_submit)
    sub.add_parser("jobs", parents=[common], help="list all jobs").set_defaults(func=cmd_jobs)
    p = sub.add_parser("build-worker", parents=[common], help="build submitted jobs' snapshots (serve runs "
                       "this itself; run it beside gunicorn started directly)",
                       description="Take jobs in status 'preparing', build their snapshot and features bundle "
                       "and queue them for runners. 'abserver serve' starts and supervises these itself "
                       "(--builders); run this beside gunicorn when starting gunicorn directly.")
    add_build_options(p)
    add_quota_option(p)
    p.add_argument("--once", action="store_true", help="build what is queued, then exit")
    p.add_argument("--builder-id", type=_builder_id, help=argparse.SUPPRESS)  # given by serve
    p.add_argument("--recover", type=_builder_id, action="append", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_build_worker)
    p = sub.add_parser("serve", parents=[common], help="run the API on gunicorn (see docs/server.md)",
                       description="Serve /api/v1 with gunicorn's threaded workers, a request timeout and "
                       "request-size limits; --dev runs Flask's development server instead.")
    p.add_argument("--bind", "--listen", dest="bind", type=_listen, default=("127.0.0.1", 8080),
                   help="HOST:PORT to listen on (default 127.0.0.1:8080; port 0 picks a free one)")
    p.add_argument("--workers", type=_positive, default=2, help="worker processes (default %(default)s)")
    p.add_argument("--threads", type=_positive, default=8, help="threads per worker (default %(default)s)")
    p.add_argument("--timeout", type=_positive, default=120,
                   help="seconds a request may run before its worker is restarted (default %(default)s)")
    p.add_argument("--graceful-timeout", type=_positive, default=30,
                   help="seconds requests may finish after SIGTERM (default %(default)s)")
    p.add_argument("--keep-alive", type=_positive, default=5,
                   help="seconds an idle keep-alive connection is kept (default %(default)s)")
    p.add_argument("--max-requests", type=int, default=0,
                   help="restart a worker after this many requests, 0: never (default %(default)s)")
    p.add_argument("--client-timeout", type=_positive, default=30,
                   help="seconds a client may take to send a request's line and headers (default %(default)s)")
    p.add_argument("--dev", action="store_true", help="Flask's development server (one process, no limits)")
    p.add_argument("--builders", type=_count, default=1,
                   help="build-worker processes started and supervised beside the workers, 0 to 16; "
                   "0: run 'abserver build-worker' yourself (default %(default)s)")
    add_build_options(p)
    add_timing_options(p)
    p.set_defaults(func=cmd_serve)
    return parser


def apply_settings(parser: argparse.ArgumentParser, values: dict) -> None:
    """The settings file's values become the sub-commands' defaults (flags still win;
    $ABSERVER_DB wins over the file's db)."""
    if os.environ.get("ABSERVER_DB"):
        values = {k: v for k, v in values.items() if k != "db"}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.set_defaults(**settings.cli_defaults(values, [a.dest for a in sub._actions]))


def _say(problem: object) -> None:
    """One printable line on stderr: names from files and databases (a class folder called
    ESC[2J, a newline in a path) are escaped, never sent to the terminal raw."""
    print("abserver: %s" % sanitize(problem, limit=2000), file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--config")
    pre, _ = early.parse_known_args(argv)
    try:
        apply_settings(parser, settings.load(pre.config))
    except settings.SettingsError as exc:
        _say(exc)
        return EX_CONFIG
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    try:
        return args.func(args)
    except (UserError, DatasetError, OptionsError) as exc:
        _say(exc)
        return EX_DATAERR
    except ApiError as exc:
        _say(exc.message)
        return EX_DATAERR
    except (MigrationError, ValueError) as exc:
        _say(exc)
        return EX_CONFIG
    except sa_exc.DBAPIError as exc:
        _say("database error: %s (%s)" % (str(exc.orig).strip().splitlines()[0], _db_hint(args)))
        return EX_UNAVAILABLE
    except sa_exc.ArgumentError as exc:
        _say("bad database URL: %s" % exc)
        return EX_CONFIG
    except OSError as exc:
        _say(exc)
        return EX_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
