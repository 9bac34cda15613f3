"""The Flask application factory: wiring only (auth, errors, blueprints); handlers live in api/."""
import logging
from typing import Optional

import sqlalchemy.exc
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from . import __version__
from .api import blueprint as api_blueprint
from .config import ServerConfig
from .context import CONFIG_KEY, ENGINE_KEY
from .db import make_engine
from .errors import ApiError
from .migrations import current_version, latest_version
from .responses import json_response
from .text import sanitize

log = logging.getLogger("abserver")


def create_app(db_url: str, config: Optional[ServerConfig] = None) -> Flask:
    """An app serving ``/api/v1`` on the database at ``db_url`` (which must be migrated)."""
    config = config or ServerConfig()
    config.validate()
    engine = make_engine(db_url)
    version = current_version(engine)
    if version != latest_version():
        raise RuntimeError("database schema is at version %d, this server needs %d: run "
                           "'abserver init-db --db URL' (it upgrades in place)" % (version, latest_version()))
    app = Flask("abserver")
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload_bytes
    app.extensions[ENGINE_KEY] = engine
    app.extensions[CONFIG_KEY] = config
    app.register_blueprint(api_blueprint, url_prefix="/api/v1")
    from .web import init_app as init_web_pages

    init_web_pages(app)  # the owner's web pages (docs/web.md)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return json_response(exc.body(), exc.status)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 406: "not_acceptable",
                 408: "request_timeout", 411: "length_required", 413: "too_large", 414: "uri_too_long",
                 415: "unsupported_media_type", 416: "bad_range", 428: "precondition_required",
                 429: "too_many_requests", 431: "headers_too_large", 500: "internal_error",
                 501: "not_implemented", 503: "unavailable"}
        message = exc.description or exc.name
        if exc.code == 404:
            message = "no such endpoint: %s %s (see /api/v1/openapi.json)" % (sanitize(request.method, 16),
                                                                                sanitize(request.path, 200))
        body = ApiError(exc.code or 500, codes.get(exc.code or 0, "http_error"), message).body()
        response = json_response(body, exc.code or 500)
        if exc.code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(sqlalchemy.exc.OperationalError)
    def _database_unavailable(exc: Exception):
        # The database is restarting or unreachable: nothing is wrong with the request, so
        # clients should retry (a 500 would read as a server bug and is not retryable).
        log.warning("database unavailable on %s %s: %s", sanitize(request.method, 16), sanitize(request.path),
                    str(getattr(exc, "orig", exc)).strip().splitlines()[0:1])
        response = json_response(ApiError(503, "database_unavailable", "the job server's database is "
                                          "unavailable; retry later").body(), 503)
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", sanitize(request.method, 16), sanitize(request.path))
        return json_response(ApiError(500, "internal_error", "internal server error; the server log has "
                                      "the details").body(), 500)

    @app.after_request
    def _server_header(response: Response):
        response.headers["X-Abserver-Version"] = __version__
        return response

    return app


__all__ = ["create_app"]
