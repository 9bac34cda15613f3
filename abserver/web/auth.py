"""Owner sign-in for the web pages: token → server-side session, CSRF, sign-in rate limit.

The token is posted once in a form body and never stored, echoed, logged or put in a
URL. The browser gets a signed cookie holding a random session id (HttpOnly,
SameSite=Lax, Secure when the request came over TLS); the database keeps only the
id's SHA-256 with the user and an expiry, so signing out revokes the session.
Every POST carries Flask-WTF's CSRF token (bound to the session, signed, expiring).
"""
import hashlib
import secrets
from typing import Optional, Tuple

import sqlalchemy as sa
from flask import current_app, request, session
from flask.sessions import SecureCookieSessionInterface

from ..tables import web_login_failures, web_secret, web_sessions
from ..timefmt import now
from ..users import user_by_token

SESSION_SECONDS = 12 * 3600  # a sign-in lasts this long
LOGIN_WINDOW = 900  # seconds over which failed sign-ins are counted
LOGIN_MAX_FAILURES = 10  # per client address and window; then 429 until the window moves on
MAX_TOKEN_CHARS = 200  # tokens are 64 hex characters; anything longer is not one


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure exactly when this request arrived over TLS.

    Behind a TLS-terminating proxy the WSGI server must pass the original scheme
    (gunicorn: ``--forwarded-allow-ips`` with ``X-Forwarded-Proto``)."""

    def get_cookie_secure(self, app) -> bool:
        return bool(request.is_secure)


def load_secret(engine: sa.engine.Engine) -> str:
    """The cookie/CSRF signing key, made once per database so every worker shares it."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(web_secret.c.secret).where(web_secret.c.id == 1)).first()
    if row is not None:
        return row.secret
    try:
        with engine.begin() as conn:
            conn.execute(web_secret.insert().values(id=1, secret=secrets.token_hex(32)))
    except sa.exc.IntegrityError:
        pass  # another worker made it first
    with engine.connect() as conn:
        return conn.execute(sa.select(web_secret.c.secret).where(web_secret.c.id == 1)).scalar_one()


def _engine() -> sa.engine.Engine:
    return current_app.extensions["abserver.engine"]


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("ascii", "replace")).hexdigest()


def current_user() -> Optional[Tuple[int, str]]:
    """(user id, name) of the signed-in owner, or None (no, unknown or expired session)."""
    sid = session.get("sid")
    if not isinstance(sid, str) or len(sid) != 64:
        return None
    # A disabled user, or a token rotated or revoked after the sign-in, ends the session too.
    query = sa.text("SELECT u.id, u.name FROM web_sessions s JOIN users u ON u.id = s.user_id "
                    "WHERE s.id_sha256 = :h AND s.expires > :now AND u.disabled_at IS NULL "
                    "AND (u.token_changed IS NULL OR u.token_changed < s.created)")
    with _engine().connect() as conn:
        row = conn.execute(query, {"h": _sid_hash(sid), "now": now()}).first()
    return (row.id, row.name) if row is not None else None


def client_key() -> str:
    return (request.remote_addr or "unknown")[:64]


def rate_limited(client: str) -> bool:
    """True when ``client`` failed LOGIN_MAX_FAILURES sign-ins within LOGIN_WINDOW seconds."""
    query = sa.select(sa.func.count()).select_from(web_login_failures).where(
        web_login_failures.c.client == client, web_login_failures.c.at > now() - LOGIN_WINDOW)
    with _engine().connect() as conn:
        return int(conn.execute(query).scalar() or 0) >= LOGIN_MAX_FAILURES


def sign_in(token: str) -> Optional[str]:
    """Start a session for the owner of ``token``; returns the user name, or None (and counts a failure)."""
    token = token.strip()
    user = None
    if token and len(token) <= MAX_TOKEN_CHARS:
        with _engine().connect() as conn:
            user = user_by_token(conn, token)
        if user is not None and user.disabled_at is not None:
            user = None  # a disabled user signs in as little as their runner can
    ts = now()
    if user is None:
        with _engine().begin() as conn:
            conn.execute(web_login_failures.delete().where(web_login_failures.c.at < ts - LOGIN_WINDOW))
            conn.execute(web_login_failures.insert().values(client=client_key(), at=ts))
        return None
    sid = secrets.token_hex(32)
    with _engine().begin() as conn:
        conn.execute(web_sessions.delete().where(web_sessions.c.expires < ts))
        conn.execute(web_sessions.insert().values(id_sha256=_sid_hash(sid), user_id=user.id, created=ts,
                                                  expires=ts + SESSION_SECONDS))
    session.clear()  # a fresh session (and CSRF token) after sign-in: no fixation
    session["sid"] = sid
    session.permanent = True
    return user.name


def sign_out() -> None:
    sid = session.get("sid")
    if isinstance(sid, str):
        with _engine().begin() as conn:
            conn.execute(web_sessions.delete().where(web_sessions.c.id_sha256 == _sid_hash(sid)))
    session.clear()
