"""AcousticBrainz's own paths, with AB's shapes: job list, job details, bulk low-level."""
from pathlib import Path

from flask import current_app, g, request

from .. import API_VERSION, __version__
from .. import jobs as job_store
from ..context import engine
from ..responses import json_response
from ..datasets import visible_documents
from ..errors import ApiError
from ..text import canonical_uuid, truncated_list
from . import blueprint, canonical_id

MAX_BULK = 25
OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.json"


@blueprint.route("/openapi.json", methods=["GET"])
def openapi():
    return current_app.response_class(OPENAPI_PATH.read_bytes(), content_type="application/json")


@blueprint.route("/whoami", methods=["GET"])
def whoami():
    return json_response({"username": g.user_name, "api_version": API_VERSION, "server_version": __version__})


@blueprint.route("/datasets/evaluation/jobs", methods=["GET"])
def list_jobs():
    unknown = sorted(set(request.args) - {"status", "location"})
    if unknown:
        raise ApiError(400, "unknown_field", "unknown query parameter(s): %s" % truncated_list(unknown))
    if request.args.get("status") != "pending" or request.args.get("location") != "remote":
        raise ApiError(400, "bad_parameter", "parameter location must be 'remote' and status 'pending'")
    with engine().connect() as conn:
        listed = job_store.list_pending_remote(conn, g.user_id)
    return json_response({"username": g.user_name, "jobs": listed})


@blueprint.route("/datasets/evaluation/jobs/<job_id>", methods=["GET"])
def job_details(job_id):
    job_id = canonical_id(job_id)
    with engine().connect() as conn:
        job = job_store.get_job(conn, job_id, g.user_id)
        return json_response(job_store.job_details(conn, job))


def _parse_ids(raw: str):
    ids = []
    for item in raw.split(";"):
        mbid, _, offset = item.partition(":")
        mbid = canonical_uuid(mbid)
        if mbid is None:
            raise ApiError(400, "bad_parameter", "%r is not a recording MBID" % item[:64])
        if offset and (not offset.isdigit() or len(offset) > 9):
            raise ApiError(400, "bad_parameter", "offset in %r must be a non-negative integer" % item[:64])
        ids.append((mbid, int(offset or 0)))
    return ids


@blueprint.route("/low-level", methods=["GET"])
def bulk_lowlevel():
    raw = request.args.get("recording_ids")
    if not raw:
        raise ApiError(400, "missing_parameter", "Missing `recording_ids` parameter")
    if len(raw.split(";")) > MAX_BULK:
        raise ApiError(400, "too_many_ids", "More than 25 recordings not allowed per request")
    ids = _parse_ids(raw)
    body = {}
    with engine().connect() as conn:
        for mbid in sorted({m for m, _offset in ids}):
            docs = visible_documents(conn, mbid, g.user_id)
            for m, offset in ids:
                if m == mbid and offset < len(docs):
                    body.setdefault(mbid, {})[str(offset)] = docs[offset]
    body["mbid_mapping"] = {}
    return json_response(body, allow_nan=True)  # Essentia documents can hold NaN
