"""The running app's shared handles (database engine, settings), for handlers and helpers.

``create_app`` stores them on the Flask app; this module reads them back, so handler
modules never import the app module (which imports them to register blueprints).
"""
import sqlalchemy as sa
from flask import current_app

from .config import ServerConfig

ENGINE_KEY = "abserver.engine"
CONFIG_KEY = "abserver.config"


def engine() -> sa.engine.Engine:
    return current_app.extensions[ENGINE_KEY]


def config() -> ServerConfig:
    return current_app.extensions[CONFIG_KEY]
