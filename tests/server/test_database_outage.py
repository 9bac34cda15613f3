"""While PostgreSQL is down the server answers 503 database_unavailable (retryable), then recovers.

A 500 would tell a runner the server is broken; a 503 with Retry-After tells it to wait.
Real PostgreSQL cluster of its own (stopped and started again by the test), real server process.
"""
import requests

import pytest

from helpers.postgres import PostgresCluster, pg_bindir

JOBS = "/datasets/evaluation/jobs?status=pending&location=remote"


@pytest.mark.postgres
def test_database_down_is_503_and_the_server_recovers(server_factory):
    if pg_bindir() is None:
        pytest.skip("PostgreSQL server binaries not installed")
    with PostgresCluster() as cluster:
        srv = server_factory(db_url=cluster.new_database())
        token = srv.add_user("alice")
        assert requests.get(srv.url(JOBS), headers=srv.auth(token), timeout=30).status_code == 200

        opts = "-p %d -k %s -c listen_addresses=127.0.0.1" % (cluster.port, cluster.dir)
        cluster._run(["pg_ctl", "-D", str(cluster.data), "-m", "fast", "-w", "stop"])
        down = requests.get(srv.url(JOBS), headers=srv.auth(token), timeout=60)
        assert down.status_code == 503, down.text
        assert down.json()["code"] == "database_unavailable"
        assert down.headers["Retry-After"] == "5"
        assert "Traceback" not in down.text

        cluster._run(["pg_ctl", "-D", str(cluster.data), "-o", opts, "-l", str(cluster.dir / "postgres.log"),
                      "-w", "start"])
        up = None
        for _ in range(10):  # the pool drops its dead connections on first use
            up = requests.get(srv.url(JOBS), headers=srv.auth(token), timeout=60)
            if up.status_code == 200:
                break
        assert up is not None and up.status_code == 200, up.text
        assert up.json()["username"] == "alice"
