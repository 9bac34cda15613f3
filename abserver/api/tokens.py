"""The token's own life cycle: its owner rotates it (a leaked copy stops working) or revokes it."""
from flask import g, request

from ..context import engine
from ..responses import json_response
from ..users import revoke_token, rotate_token
from . import blueprint, json_body


@blueprint.route("/token/rotate", methods=["POST"])
def rotate():
    """A new token for the requester; the one used for this request answers 401 from now on."""
    if request.content_length:
        json_body({})
    with engine().begin() as conn:
        token = rotate_token(conn, g.user_id)
    return json_response({"username": g.user_name, "token": token}, 200, {"Cache-Control": "no-store"})


@blueprint.route("/token", methods=["DELETE"])
def revoke():
    """Revoke the requester's token (e.g. after a leak); only the admin can issue a new one."""
    with engine().begin() as conn:
        revoke_token(conn, g.user_id)
    return json_response({"username": g.user_name, "revoked": True})
