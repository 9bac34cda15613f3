"""The ``/api/v1`` blueprint: authentication and request parsing shared by all handlers."""
from typing import Any

from flask import Blueprint, g, request

from ..context import engine
from ..bodies import Spec, check_fields, parse_json
from ..errors import ApiError
from ..text import canonical_uuid
from ..users import TokenCache

blueprint = Blueprint("api", __name__)
_TOKENS = TokenCache()
PUBLIC = {"api.openapi"}
AB_NO_AUTH = "You need to provide an Authorization header."


@blueprint.before_request
def _authenticate():
    """``Authorization: Token <key>`` (AcousticBrainz's header) names the user; 401 otherwise."""
    if request.endpoint in PUBLIC:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(401, "no_token", AB_NO_AUTH)
    if scheme != "Token" or not token.strip():
        raise ApiError(401, "bad_token", "the Authorization header must be 'Token <key>'")
    user = _TOKENS.lookup(engine(), token.strip())
    if user is None:
        raise ApiError(401, "bad_token", "unknown token; ask the server's admin for one "
                       "(abserver add-user NAME)")
    g.user_id, g.user_name, disabled = user
    if disabled:
        raise ApiError(401, "user_disabled", "this user is disabled; ask the server's admin")
    return None


def canonical_id(value: str, what: str = "job") -> str:
    """A path id in canonical form (decisions 7c); anything that is not a UUID is 404, as AB answered."""
    canonical = canonical_uuid(value)
    if canonical is None:
        raise ApiError(404, "not_found", "No such %s" % what)
    return canonical


def json_body(spec: Spec, max_bytes: int = 1024 * 1024) -> Any:
    """The request's JSON object, checked against ``spec`` (unknown fields are 400)."""
    return check_fields(json_any(max_bytes), spec)


def json_any(max_bytes: int = 1024 * 1024, allow_nan: bool = False) -> Any:
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json (got %r)"
                       % (request.mimetype or "no Content-Type"))
    return parse_json(request.get_data(cache=False), max_bytes, allow_nan)


from . import ab, owner, runner, tokens  # noqa: E402,F401  (route registration)
