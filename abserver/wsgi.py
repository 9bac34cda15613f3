"""WSGI entry point for gunicorn: ``gunicorn 'abserver.wsgi:app'`` (settings from the environment).

``ABSERVER_DB`` is the database URL; ``ABSERVER_LEASE_SECONDS``, ``ABSERVER_PING_INTERVAL``,
``ABSERVER_STALL_SECONDS``, ``ABSERVER_SPOT_CHECK_CELLS``, ``ABSERVER_SPOT_CHECK_MAX_RECORDINGS``,
``ABSERVER_SPOT_CHECK_TOLERANCE``, ``ABSERVER_MAX_RESULT_BYTES``, ``ABSERVER_MAX_MODEL_BYTES``
and ``ABSERVER_QUOTA_BYTES`` override the defaults of ``ServerConfig``.
The schema must be current (``abserver init-db`` before starting workers).
"""
import os
from dataclasses import fields

from .app import create_app
from .config import ServerConfig
from .db import DEFAULT_URL


def config_from_env() -> ServerConfig:
    values = {}
    for f in fields(ServerConfig):
        raw = os.environ.get("ABSERVER_" + f.name.upper())
        if raw is not None:
            values[f.name] = float(raw) if f.type in (float, "float") else int(raw)
    return ServerConfig(**values)


app = create_app(os.environ.get("ABSERVER_DB", DEFAULT_URL), config_from_env())
