"""Per-owner storage quotas: what an owner stores, counted in one place, checked before every store.

An owner's stored bytes are everything the server keeps because of them:

* ``documents``: their low-level documents (compressed, as stored);
* ``bundles``: the features bundles their snapshots reference, each distinct bundle once
  per owner. A bundle is stored once per content; when two owners' snapshots share one,
  each owner is counted its full size (the simple honest rule: neither owner's usage
  changes with what the other stores, and either owner's snapshots alone keep it stored);
* ``datasets``: their dataset definitions and frozen snapshot definitions (JSON);
* ``results``: the result JSON and model (``.history``) of their finished jobs.

``check`` (one item of known size) or ``guard`` (a batch: measured before and after) runs
in the transaction of every path that stores something for an owner (PUT /low-level, both
``import-dataset`` forms, POST /datasets, the snapshot store of a submit (API, CLI or web
page), the result upload); over the quota is ``413 quota_exceeded`` (CLI: exit 65), naming used, limit and
what to do, and the transaction stores nothing. On PostgreSQL the owner's row is locked for
the rest of the transaction so two concurrent stores of one owner cannot both pass the
check; SQLite's transactions already hold the only write lock.
"""
from contextlib import contextmanager
from typing import Iterator, NamedTuple

import sqlalchemy as sa

from .errors import ApiError
from .tables import bundles, datasets, jobs, lowlevel, snapshots, users


class Usage(NamedTuple):
    documents: int
    bundles: int
    datasets: int
    results: int

    @property
    def total(self) -> int:
        return self.documents + self.bundles + self.datasets + self.results


def _sum(conn, query) -> int:
    return int(conn.execute(query).scalar() or 0)


def usage(conn, owner_id: int) -> Usage:
    """What ``owner_id`` stores now, in bytes: sums of the size columns kept beside each stored
    item (indexed by owner; no stored item is read)."""
    own_datasets = sa.select(datasets.c.id).where(datasets.c.owner_id == owner_id)
    own_bundles = (sa.select(snapshots.c.bundle_sha256).where(snapshots.c.dataset_id.in_(own_datasets))
                   .distinct())
    total = sa.func.sum
    return Usage(
        documents=_sum(conn, sa.select(total(lowlevel.c.size_bytes)).where(lowlevel.c.owner_id == owner_id)),
        bundles=_sum(conn, sa.select(total(bundles.c.size_bytes)).where(bundles.c.sha256.in_(own_bundles))),
        datasets=_sum(conn, sa.select(total(datasets.c.size_bytes)).where(datasets.c.owner_id == owner_id))
        + _sum(conn, sa.select(total(snapshots.c.size_bytes)).where(snapshots.c.dataset_id.in_(own_datasets))),
        results=_sum(conn, sa.select(total(jobs.c.stored_bytes)).where(jobs.c.owner_id == owner_id)),
    )


class QuotaExceeded(ApiError):
    """Storing this would take the owner past their storage quota: 413 ``quota_exceeded``."""

    def __init__(self, message: str, used: int, adding: int, quota_bytes: int):
        super().__init__(413, "quota_exceeded", message,
                         {"used_bytes": used, "adding_bytes": adding, "quota_bytes": quota_bytes})


def _megabytes(n: int) -> str:
    return "%.1f MB" % (n / 1e6) if n >= 100000 else "%d bytes" % n


def lock(conn, owner_id: int) -> None:
    """Serialise the owner's stores for the rest of the transaction (PostgreSQL: the owner's
    row; SQLite: every transaction already holds the database's write lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(users.c.id).where(users.c.id == owner_id).with_for_update())


def refuse(used: int, adding: int, quota_bytes: int, what: str) -> QuotaExceeded:
    return QuotaExceeded(
        "storage quota exceeded: storing %s (%s) would take your stored data to %s, over your quota of %s "
        "(%s used now by documents, features bundles, datasets, results and models; GET /api/v1/storage "
        "shows them); ask the server's admin to raise quota_bytes" % (
            what, _megabytes(adding), _megabytes(used + adding), _megabytes(quota_bytes), _megabytes(used)),
        used, adding, quota_bytes)


def check(conn, owner_id: int, adding: int, quota_bytes: int, what: str, freed: int = 0,
          serialise: bool = True) -> None:
    """Raise QuotaExceeded unless the owner's usage, less ``freed`` (bytes this store replaces),
    plus ``adding`` stays within ``quota_bytes`` (0: no quota). Call it in the transaction that
    stores, right before the store; ``serialise=False`` for an early check on a read connection
    that must not hold the owner's lock through long work (the store checks again)."""
    if quota_bytes <= 0:
        return
    if serialise:
        lock(conn, owner_id)
    used = usage(conn, owner_id).total - freed
    if adding - freed > 0 and used + adding > quota_bytes:
        raise refuse(used, adding, quota_bytes, what)


def check_growth(conn, owner_id: int, before: int, quota_bytes: int, what: str) -> None:
    """After a batch of stores in this transaction (whose usage was ``before``, taken after
    ``lock``): raise QuotaExceeded, rolling the batch back, if it grew the owner past the quota.
    A batch that shrinks what the owner stores always passes."""
    if quota_bytes <= 0:
        return
    after = usage(conn, owner_id).total
    if after > before and after > quota_bytes:
        raise refuse(before, after - before, quota_bytes, what)


@contextmanager
def guard(conn, owner_id: int, quota_bytes: int, what: str) -> Iterator[None]:
    """``with guard(...): <stores>`` in one transaction: the owner's stores are serialised, and
    if the block grew their usage past ``quota_bytes`` QuotaExceeded is raised (so the
    transaction rolls back and nothing of the block is stored)."""
    lock(conn, owner_id)
    before = usage(conn, owner_id).total if quota_bytes > 0 else 0
    yield
    check_growth(conn, owner_id, before, quota_bytes, what)
