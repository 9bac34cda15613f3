"""Versioned schema migrations: plain SQL files ``migrations/NNNN_name.sql``, applied in order.

One file serves both dialects; the few type spellings that differ are placeholders
filled here. ``schema_version`` holds the highest applied version, so ``upgrade`` is
safe to run on every start and on any older database.
"""
import re
from pathlib import Path
from typing import List, Tuple

import sqlalchemy as sa

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_DIALECT_TYPES = {
    "sqlite": {"SERIAL_PK": "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB": "BLOB"},
    "postgresql": {"SERIAL_PK": "SERIAL PRIMARY KEY", "BLOB": "BYTEA"},
}


class MigrationError(Exception):
    """The database cannot be brought to this server's schema."""


def available() -> List[Tuple[int, Path]]:
    """All migration files as (version, path), ascending."""
    found = []
    for path in MIGRATIONS_DIR.iterdir():
        m = _FILE.match(path.name)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


def latest_version() -> int:
    return available()[-1][0]


def current_version(engine: sa.engine.Engine) -> int:
    """The schema version of the database, 0 when it has never been initialised."""
    if not sa.inspect(engine).has_table("schema_version"):
        return 0
    with engine.connect() as conn:
        value = conn.execute(sa.text("SELECT MAX(version) FROM schema_version")).scalar()
    return int(value or 0)


def _statements(sql: str, dialect: str) -> List[str]:
    types = _DIALECT_TYPES.get(dialect)
    if types is None:
        raise MigrationError("unsupported database dialect %r (use sqlite or postgresql)" % dialect)
    for key, value in types.items():
        sql = sql.replace("{%s}" % key, value)
    sql = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in sql.split(";") if s.strip()]


def _fill_dataset_recordings(conn) -> None:
    """Version 3: index the recordings of existing datasets (their classes are JSON text)."""
    import json

    for dataset_id, classes in conn.execute(sa.text("SELECT id, classes FROM datasets")).fetchall():
        try:
            mbids = sorted({m for c in json.loads(classes) for m in c.get("recordings", [])})
        except (ValueError, AttributeError, TypeError):
            continue  # unreadable classes: such a dataset cannot be submitted anyway
        for mbid in mbids:
            conn.execute(sa.text("INSERT INTO dataset_recordings (dataset_id, mbid) VALUES (:d, :m)"),
                         {"d": dataset_id, "m": mbid})


def _jobs_snapshot_nullable(conn) -> None:
    """Version 5: a job in status 'preparing' has no snapshot yet. PostgreSQL drops the
    constraint; SQLite cannot alter a column, so the table is rebuilt (SQLite's documented
    procedure: new table, copy, drop, rename, indexes; foreign keys are off meanwhile and
    checked before the commit, see ``upgrade``)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ALTER TABLE jobs ALTER COLUMN snapshot_id DROP NOT NULL"))
        return
    create = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'")).scalar()
    relaxed = re.sub(r"(snapshot_id\s+CHAR\(36\))\s+NOT NULL", r"\1", create or "", count=1)
    if relaxed == create or not re.match(r"CREATE TABLE \"?jobs\"?\s*\(", relaxed or ""):
        raise MigrationError("the jobs table does not have the expected schema (snapshot_id CHAR(36) NOT NULL); "
                             "was it changed by hand?")
    indexes = [row[0] for row in conn.execute(sa.text(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' AND sql IS NOT NULL"))]
    columns = ", ".join(row[1] for row in conn.execute(sa.text("PRAGMA table_info(jobs)")))
    conn.execute(sa.text(re.sub(r"CREATE TABLE \"?jobs\"?", "CREATE TABLE jobs_v5", relaxed, count=1)))
    conn.execute(sa.text("INSERT INTO jobs_v5 (%s) SELECT %s FROM jobs" % (columns, columns)))
    conn.execute(sa.text("DROP TABLE jobs"))
    conn.execute(sa.text("ALTER TABLE jobs_v5 RENAME TO jobs"))
    for statement in indexes:
        conn.execute(sa.text(statement))


# Data moves SQL cannot express portably, run after a version's SQL in the same transaction.
PYTHON_STEPS = {3: _fill_dataset_recordings, 5: _jobs_snapshot_nullable}


def upgrade(engine: sa.engine.Engine, target: int = 0) -> List[int]:
    """Apply every migration above the current version (up to ``target`` when given).

    Each version runs in its own transaction together with its ``schema_version`` row,
    so an interrupted upgrade leaves the database at the last complete version.
    """
    target = target or latest_version()
    current = current_version(engine)
    if current > latest_version():
        raise MigrationError(
            "database schema version %d is newer than this server knows (%d); upgrade abserver"
            % (current, latest_version())
        )
    applied = []
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"))
    for version, path in available():
        if version <= current or version > target:
            continue
        with engine.connect() as conn:
            sqlite = engine.dialect.name == "sqlite"
            if sqlite:  # a no-op inside a transaction: set on the raw connection, before BEGIN
                conn.connection.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    for statement in _statements(path.read_text(encoding="utf-8"), engine.dialect.name):
                        conn.execute(sa.text(statement))
                    if version in PYTHON_STEPS:
                        PYTHON_STEPS[version](conn)
                    if sqlite:
                        broken = conn.execute(sa.text("PRAGMA foreign_key_check")).fetchall()
                        if broken:
                            raise MigrationError("version %d would leave %d row(s) referring to missing rows "
                                                 "(first: table %s); nothing was changed" % (
                                                     version, len(broken), broken[0][0]))
                    conn.execute(sa.text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": version})
            finally:
                if sqlite:
                    conn.connection.execute("PRAGMA foreign_keys=ON")
        applied.append(version)
    return applied
