"""Users and their API tokens."""
import threading
import time
from typing import Dict, Optional, Tuple

import sqlalchemy as sa

from .tables import users
from .timefmt import now
from .tokens import new_token, token_hash


class UserError(ValueError):
    """A user cannot be created or found (name taken, bad name, unknown user)."""


def add_user(engine: sa.engine.Engine, name: str) -> str:
    """Create ``name`` and return its token; only the token's hash is stored."""
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UserError("user name %r must be 1-64 letters, digits, '-', '_' or '.'" % name)
    token = new_token()
    with engine.begin() as conn:
        if conn.execute(sa.select(users.c.id).where(users.c.name == name)).first():
            raise UserError("user %r already exists" % name)
        conn.execute(users.insert().values(name=name, token_sha256=token_hash(token), created=now()))
    return token


_BY_HASH = sa.text("SELECT id, name FROM users WHERE token_sha256 = :h")


def user_by_token(conn: sa.engine.Connection, token: str) -> Optional[sa.engine.Row]:
    return conn.execute(_BY_HASH, {"h": token_hash(token)}).first()


class TokenCache:
    """Known tokens for ``ttl`` seconds, so a ping costs one database round trip, not two.

    Only successful look-ups are cached (keyed by the token's hash); users are never
    deleted, so the only effect of the TTL is memory.
    """

    def __init__(self, ttl: float = 60.0, max_entries: int = 10000):
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: Dict[str, Tuple[float, int, str]] = {}
        self._lock = threading.Lock()

    def lookup(self, engine: sa.engine.Engine, token: str) -> Optional[Tuple[int, str]]:
        key = token_hash(token)
        ts = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit and hit[0] > ts:
            return hit[1], hit[2]
        with engine.connect() as conn:
            row = conn.execute(_BY_HASH, {"h": key}).first()
        if row is None:
            return None
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (ts + self.ttl, row.id, row.name)
        return row.id, row.name


def user_id_by_name(conn: sa.engine.Connection, name: str) -> int:
    row = conn.execute(sa.select(users.c.id).where(users.c.name == name)).first()
    if row is None:
        raise UserError("no user named %r (create one with: abserver add-user %s)" % (name, name))
    return row.id
