"""Shared fixtures. Job server and PostgreSQL ones: see tests/helpers/server.py and postgres.py."""
import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers.databases import DB_PARAMS, db_url  # noqa: E402
from helpers.postgres import PostgresCluster, pg_bindir  # noqa: E402
from helpers.server import EXAMPLE_DATASET, ServerProcess  # noqa: E402
from helpers import leaks  # noqa: E402

# Every process this session starts inherits the marker; see helpers/leaks.py. A session of
# its own (each run gets a new marker, not the caller's): the compat-runtime tests run pytest
# inside pytest, and a nested session that reaped the outer one's marker at its end killed the
# outer session's PostgreSQL cluster under the tests that still needed it.
os.environ[leaks.MARKER] = uuid.uuid4().hex
_LEFTOVERS = []


def pytest_sessionfinish(session, exitstatus):
    _LEFTOVERS.extend(leaks.reap_leftovers(os.environ[leaks.MARKER]))


def pytest_terminal_summary(terminalreporter):
    if _LEFTOVERS:
        terminalreporter.section("processes left running by tests (now killed)")
        for line in _LEFTOVERS:
            terminalreporter.write_line(line)


@pytest.fixture
def server_factory(tmp_path):
    """``start(db_url=None, args=(), gunicorn_workers=0) -> ServerProcess``; all stopped at teardown."""
    started = []

    def start(db_url=None, args=(), gunicorn_workers=0, name=None):
        srv = ServerProcess(tmp_path / (name or "server%d" % len(started)), db_url=db_url, args=args,
                            gunicorn_workers=gunicorn_workers)
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def sqlite_server(server_factory):
    """A running job server on a fresh SQLite file."""
    return server_factory()


@pytest.fixture(scope="session")
def postgres_cluster():
    """One private PostgreSQL cluster for the session (skipped only where PostgreSQL is absent and CI
    does not require it)."""
    if pg_bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are missing; tools/apt-packages.txt lists postgresql")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster):
    """A SQLAlchemy URL of a fresh, empty database on the private cluster."""
    return postgres_cluster.new_database()


@pytest.fixture(params=DB_PARAMS)
def any_db_url(request, tmp_path):
    """A fresh database URL, once on SQLite and once on PostgreSQL (marked ``postgres``)."""
    return db_url(request, tmp_path)


__all__ = ["EXAMPLE_DATASET"]
