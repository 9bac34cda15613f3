"""Users and their API tokens."""
from typing import Optional

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


def user_by_token(conn: sa.engine.Connection, token: str) -> Optional[sa.engine.Row]:
    return conn.execute(
        sa.select(users.c.id, users.c.name).where(users.c.token_sha256 == token_hash(token))
    ).first()


def user_id_by_name(conn: sa.engine.Connection, name: str) -> int:
    row = conn.execute(sa.select(users.c.id).where(users.c.name == name)).first()
    if row is None:
        raise UserError("no user named %r (create one with: abserver add-user %s)" % (name, name))
    return row.id
