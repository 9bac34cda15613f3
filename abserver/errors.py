"""The one funnel from failures to the JSON error body every endpoint answers with."""
from typing import Optional


class ApiError(Exception):
    """An error answered as ``{"code", "message", "error"}`` with an HTTP status.

    ``message`` is AcousticBrainz's field; ``code`` (machine-readable) and ``error``
    (the same sentence) are ours, so AB clients and the protocol's clients both work.
    """

    def __init__(self, status: int, code: str, message: str, extra: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}

    def body(self) -> dict:
        body = {"code": self.code, "message": self.message, "error": self.message}
        body.update(self.extra)
        return body


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def not_found(message: str = "No such job") -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(code: str, message: str) -> ApiError:
    return ApiError(409, code, message)


def invalid(code: str, message: str) -> ApiError:
    return ApiError(422, code, message)
