"""The dataset owner's web pages: sign-in, datasets, jobs with live progress, results with plots.

``init_app(app)`` is the only wiring the application needs; everything else (routes,
templates, static files, the session cookie) lives in this package. See docs/web.md.
"""
from datetime import timedelta

from flask import Flask
from markupsafe import Markup

from .analysis import printable
from .auth import SESSION_SECONDS, SessionInterface, load_secret


def init_app(app: Flask) -> None:
    from .views import blueprint

    app.secret_key = load_secret(app.extensions["abserver.engine"])
    app.session_interface = SessionInterface()
    app.config.update(SESSION_COOKIE_NAME="abserver_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", PERMANENT_SESSION_LIFETIME=timedelta(seconds=SESSION_SECONDS),
                      WTF_CSRF_TIME_LIMIT=SESSION_SECONDS, WTF_CSRF_FIELD_NAME="csrf_token")
    app.register_blueprint(blueprint)
    # Every string a template prints goes through ``printable``: names from datasets and
    # runners may hold controls or lone surrogates, which would break (or fail to encode) a page.
    app.jinja_env.finalize = lambda value: (printable(value) if isinstance(value, str)
                                            and not isinstance(value, Markup) else value)
