"""abserver: the reference job server for abrunnerd (see docs/protocol.md and docs/server.md)."""

from abrunnerd import __version__

API_VERSION = 1

__all__ = ["__version__", "API_VERSION"]
