"""Server-suite fixtures: a populated server (two owners, one dataset each) on SQLite or PostgreSQL."""
from dataclasses import dataclass

import pytest
from helpers.databases import DB_PARAMS, NO_SPOT, db_url
from helpers.server import ServerProcess


@dataclass
class World:
    srv: object
    alice: str  # token
    bob: str
    dataset: str  # alice's dataset id
    job: str  # alice's pending remote job (small grid)
    bob_job: str


def build_world(srv) -> World:
    alice = srv.add_user("alice")
    bob = srv.add_user("bob")
    dataset = srv.import_dataset(owner="alice")
    job = srv.submit(dataset, "--remote", "--c-values", "1", "3", "--gamma-values", "-3", "--preprocessing",
                     "basic")
    bob_dataset = srv.import_dataset(owner="bob")
    bob_job = srv.submit(bob_dataset, "--remote")
    return World(srv, alice, bob, dataset, job, bob_job)


@pytest.fixture(scope="session", params=DB_PARAMS)
def world(request, tmp_path_factory) -> World:
    """A server with two owners, shared by the suite's tests (on SQLite, then on PostgreSQL).

    Tests that change a job's state make their own with ``jobflow.new_job``; tests
    must not assume they see the only jobs of an owner.
    """
    tmp_dir = tmp_path_factory.mktemp("world")
    srv = ServerProcess(tmp_dir, db_url=db_url(request, tmp_dir), args=NO_SPOT).start()
    try:
        yield build_world(srv)
    finally:
        srv.stop()
