"""Engine construction: one place that knows SQLite's and PostgreSQL's quirks."""
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

DEFAULT_URL = "sqlite:////var/lib/abserver/abserver.db"


def make_engine(url: str) -> sa.engine.Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and write-locking transactions.

    On SQLite every transaction starts with ``BEGIN IMMEDIATE`` so check-and-set
    statements (claim, ping) serialise instead of failing with "database is locked"
    at commit time; the busy timeout makes concurrent writers wait their turn.
    """
    if url.startswith("sqlite"):
        # A pool, not SQLAlchemy 1.4's NullPool default for files: opening a connection
        # (and the WAL checkpoint when the last one closes) costs more than a request.
        engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                                  poolclass=QueuePool, pool_size=8, max_overflow=16, pool_timeout=60)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
            dbapi_conn.isolation_level = None  # let us issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # pragma: no cover
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgres"):
        # No pool_pre_ping: it costs a round trip per request (a fifth of a ping's work);
        # connections are recycled hourly, and one stale after a database restart fails
        # one request, which clients retry.
        return sa.create_engine(url, pool_size=8, max_overflow=16, pool_timeout=60, pool_recycle=3600)
    raise ValueError("unsupported database URL scheme %r: use sqlite:///PATH or postgresql://USER@HOST/DB"
                     % url.split(":", 1)[0])
