"""Users and their API tokens."""
import re
from typing import Optional, Tuple

import sqlalchemy as sa

from .tables import users
from .timefmt import now
from .text import sanitize
from .tokens import new_token, token_hash


class UserError(ValueError):
    """A user cannot be created or found (name taken, bad name, unknown user)."""


# Lower-case ASCII only: no look-alike letters from other scripts, no case twins, nothing a
# terminal or a log could misread.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UserError("user name %r must be 1-64 lower-case ASCII letters, digits, '-', '_' or '.', starting "
                        "with a letter or digit" % (sanitize(name, 80),))
    return name


def add_user(engine: sa.engine.Engine, name: str) -> str:
    """Create ``name`` and return its token; only the token's hash is stored."""
    check_name(name)
    token = new_token()
    with engine.begin() as conn:
        if conn.execute(sa.select(users.c.id).where(users.c.name == name)).first():
            raise UserError("user %r already exists" % name)
        conn.execute(users.insert().values(name=name, token_sha256=token_hash(token), created=now(),
                                           token_changed=now(), token_revoked=0))
    return token


def _set_token(conn, user_id: int, token_sha256: str, revoked: bool) -> None:
    conn.execute(users.update().where(users.c.id == user_id)
                 .values(token_sha256=token_sha256, token_changed=now(), token_revoked=1 if revoked else 0))


def rotate_token(conn, user_id: int) -> str:
    """A new token for the user; the old one stops working with this transaction's commit."""
    token = new_token()
    _set_token(conn, user_id, token_hash(token), revoked=False)
    return token


def revoke_token(conn, user_id: int) -> None:
    """The user's token stops working; only a rotation (by the admin) gives them a new one.

    The stored hash becomes that of a secret nobody is shown, so no token matches it."""
    _set_token(conn, user_id, token_hash("revoked:" + new_token()), revoked=True)


def set_disabled(conn, user_id: int, disabled: bool) -> None:
    conn.execute(users.update().where(users.c.id == user_id).values(disabled_at=now() if disabled else None))


_BY_HASH = sa.text("SELECT id, name, disabled_at FROM users WHERE token_sha256 = :h")


def user_by_token(conn: sa.engine.Connection, token: str) -> Optional[sa.engine.Row]:
    return conn.execute(_BY_HASH, {"h": token_hash(token)}).first()


class TokenCache:
    """Token look-ups for authentication.

    No positive caching: a rotated or revoked token, or a disabled user, must answer 401 on
    the very next request, in every worker process (issue 17). The look-up is one indexed
    read on its own pooled connection."""

    def lookup(self, engine: sa.engine.Engine, token: str) -> Optional[Tuple[int, str, bool]]:
        with engine.connect() as conn:
            row = conn.execute(_BY_HASH, {"h": token_hash(token)}).first()
        if row is None:
            return None
        return row.id, row.name, row.disabled_at is not None


def user_id_by_name(conn: sa.engine.Connection, name: str) -> int:
    row = conn.execute(sa.select(users.c.id).where(users.c.name == name)).first()
    if row is None:
        raise UserError("no user named %r (create one with: abserver add-user %s)"
                        % (sanitize(name, 80), sanitize(name, 80)))
    return row.id


def list_users(conn) -> list:
    return list(conn.execute(sa.select(users.c.id, users.c.name, users.c.created, users.c.disabled_at, users.c.token_changed,
                                       users.c.token_revoked).order_by(users.c.name)))
