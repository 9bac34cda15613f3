"""JSON responses: the one way every handler (and every error) answers."""
import json
from typing import Optional

from flask import Response

from .errors import ApiError


def json_response(body, status: int = 200, headers: Optional[dict] = None, allow_nan: bool = False) -> Response:
    """Sorted keys like AB; NaN only where documents may hold it (written as Python's json does)."""
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=allow_nan)
    return Response(data + "\n", status=status, headers=headers, content_type="application/json; charset=utf-8")


def error_response(exc: ApiError, headers: Optional[dict] = None) -> Response:
    return json_response(exc.body(), exc.status, headers)
