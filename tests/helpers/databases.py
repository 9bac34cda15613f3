"""The databases a server test runs on: SQLite always, PostgreSQL where the machine has it
(``-m postgres`` marks those; CI requires them)."""
import pytest

DB_PARAMS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
NO_SPOT = ("--spot-check-cells", "0")  # server args: no spot check (tests that upload made-up results)


def db_url(request, tmp_dir) -> str:
    """The URL of a fresh database of ``request.param`` (a fixture parametrized with DB_PARAMS)."""
    if request.param == "sqlite":
        return "sqlite:///%s" % (tmp_dir / "abserver.db")
    return request.getfixturevalue("postgres_cluster").new_database()
