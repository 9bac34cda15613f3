"""The dataset owner's paths: create datasets and documents, submit, cancel, download the model."""
from flask import Response, g, request, url_for

from .. import jobs as job_store
from ..context import engine
from ..responses import json_response
from ..bodies import check_uuid
from ..context import config
from .. import quota
from ..datasets import DatasetError, check_classes, create_dataset, normalize_dataset, put_lowlevel
from ..errors import ApiError, invalid
from ..options import OptionsError
from . import blueprint, canonical_id, json_any, json_body

MAX_DOC_BYTES = 16 * 1024 * 1024
EVALUATE_SPEC = {"eval_location": ((str,), False), "options": ((dict, type(None)), False),
                 "seed": ((int, type(None)), False)}


@blueprint.route("/datasets", methods=["POST"])
def create():
    try:
        data = normalize_dataset(json_any(MAX_DOC_BYTES))
    except DatasetError as exc:
        raise ApiError(400, "bad_dataset", str(exc))
    check_classes(data["classes"])
    with engine().begin() as conn:
        with quota.guard(conn, g.user_id, config().quota_bytes, "dataset %r" % data["name"][:80]):
            dataset_id = create_dataset(conn, g.user_id, data)
    return json_response({"success": True, "dataset_id": dataset_id}, 201)


@blueprint.route("/low-level/<mbid>", methods=["PUT"])
def put_document(mbid):
    mbid = check_uuid(mbid, "recording MBID")
    doc = json_any(MAX_DOC_BYTES, allow_nan=True)
    try:
        with engine().begin() as conn:
            put_lowlevel(conn, mbid, doc, g.user_id, quota_bytes=config().quota_bytes)
    except DatasetError as exc:
        raise invalid("bad_document", str(exc))
    return json_response({"mbid": mbid}, 200)


@blueprint.route("/datasets/<dataset_id>/evaluate", methods=["POST"])
def evaluate(dataset_id):
    body = json_body(EVALUATE_SPEC)
    try:
        dataset_id = check_uuid(dataset_id, "dataset id")
    except ApiError:
        raise ApiError(404, "not_found", "Can't find this dataset.")
    try:
        job_id = job_store.submit(engine(), dataset_id, g.user_id, body.get("eval_location", "remote"),
                                  body.get("options"), body.get("seed"), quota_bytes=config().quota_bytes)
    except OptionsError as exc:
        raise ApiError(400, "bad_options", str(exc))
    # Accepted, not done: a builder process freezes the snapshot and builds the bundle, then
    # the job becomes "pending" (docs/protocol.md, "Job states").
    return json_response({"job_id": job_id, "status": "preparing"}, 202,
                         {"Location": url_for("api.job_details", job_id=job_id)})


@blueprint.route("/datasets/evaluation/jobs/<job_id>/cancel", methods=["POST"])
def cancel(job_id):
    job_id = canonical_id(job_id)
    if request.content_length:
        json_body({})
    with engine().begin() as conn:
        status = job_store.cancel(conn, job_id, g.user_id)
    return json_response({"job_id": job_id, "status": status})


@blueprint.route("/datasets/evaluation/jobs/<job_id>/model", methods=["GET"])
def model(job_id):
    job_id = canonical_id(job_id)
    with engine().connect() as conn:
        job = job_store.get_job(conn, job_id, g.user_id)
    if job.model is None:
        raise ApiError(404, "no_model", "job has no model yet (status %s)" % job.status)
    return Response(bytes(job.model), content_type="application/octet-stream",
                    headers={"Content-Disposition": "attachment; filename=%s.history" % job.id})


@blueprint.route("/storage", methods=["GET"])
def storage():
    """What the requester stores, by kind, and their quota (bytes; quota 0: none)."""
    with engine().connect() as conn:
        used = quota.usage(conn, g.user_id)
    limit = config().quota_bytes
    return json_response({"username": g.user_name, "used_bytes": used.total, "quota_bytes": limit,
                          "free_bytes": max(0, limit - used.total) if limit else None,
                          "by_kind": used._asdict()})
