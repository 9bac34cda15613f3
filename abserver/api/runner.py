"""The runner's paths: claim, features bundle, ping, fail, result upload."""
import json
import re

from flask import Response, g, request, url_for

from .. import jobs as job_store
from .. import quota
from ..context import config, engine
from ..responses import json_response
from ..bodies import check_uuid, parse_json
from ..errors import ApiError, conflict
from ..leases import check_upload_lease
from ..results import upload_digest, validate_result
from ..spotcheck import spot_check
from ..text import truncated_list
from ..timefmt import now
from . import blueprint, canonical_id, json_body

STAGES = ("claimed", "downloading", "training", "uploading", "paused")
TEXT = (str,)
NUMBER = (int, float)
OPT_NUMBER = (int, float, type(None))
OPT_INT = (int, type(None))
OPT_TEXT = (str, type(None))

CLAIM_SPEC = {"runner_id": (TEXT, True), "runner_name": (TEXT, True), "runner_version": (TEXT, True),
              "lease_id": (OPT_TEXT, False)}
PING_SPEC = {"lease_id": (TEXT, True), "runner_name": (TEXT, True), "runner_version": (TEXT, True),
             "stage": (TEXT, True), "fraction": (OPT_NUMBER, False), "eta_seconds": (OPT_NUMBER, False),
             "message": (OPT_TEXT, False), "cells_done": (OPT_INT, False), "cells_total": (OPT_INT, False)}
FAIL_SPEC = {"lease_id": (TEXT, True), "reason": (TEXT, True)}


def _short(body, *names, limit=255):
    for name in names:
        value = body.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise ApiError(400, "bad_field", "field %r is longer than %d characters" % (name, limit))


@blueprint.route("/datasets/evaluation/jobs/<job_id>/claim", methods=["POST"])
def claim(job_id):
    job_id = canonical_id(job_id)
    body = json_body(CLAIM_SPEC)
    body["runner_id"] = check_uuid(body["runner_id"], "runner_id")
    if body.get("lease_id") is not None:
        body["lease_id"] = check_uuid(body["lease_id"], "lease_id")
    _short(body, "runner_name", "runner_version")
    with engine().begin() as conn:
        answer = job_store.claim(conn, job_id, g.user_id, body, config())
        job = job_store.get_job(conn, job_id, g.user_id)
        sha, size = job_store.bundle_digest(conn, job)
    answer.update(features_url=url_for("api.features", job_id=answer["job_id"], _external=True),
                  features_sha256=sha, features_size=size)
    return json_response(answer)


_RANGE = re.compile(r"^bytes=(\d{1,15})-(\d{0,15})$")


def _matches(if_none_match, etag: str) -> bool:
    """RFC 9110 If-None-Match: ``*`` (any current representation) or a list of entity tags
    (weak comparison, so ``W/"x"`` matches ``"x"``)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = [t.strip() for t in if_none_match.split(",")]
    return any((t[2:] if t.startswith("W/") else t) == etag for t in tags)


@blueprint.route("/datasets/evaluation/jobs/<job_id>/features", methods=["GET"])
def features(job_id):
    job_id = canonical_id(job_id)
    with engine().connect() as conn:
        job = job_store.get_job(conn, job_id, g.user_id)
        if job.snapshot_id is None:
            raise job_store.not_ready(job)
        row = job_store.bundle_of(conn, job)
    data, sha = bytes(row.bundle), row.bundle_sha256
    etag = '"%s"' % sha
    headers = {"ETag": etag, "X-Content-SHA256": sha, "Accept-Ranges": "bytes",
               "Cache-Control": "private, max-age=0"}
    if _matches(request.headers.get("If-None-Match"), etag):
        return Response(status=304, headers=headers)
    status = 200
    spec = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if spec and (not if_range or if_range == etag):
        m = _RANGE.match(spec.strip())
        if not m:
            body = ApiError(416, "bad_range", "only a single 'bytes=N-' or 'bytes=N-M' range is supported "
                            "(got %r)" % spec[:64]).body()
            return json_response(body, 416, {"Content-Range": "bytes */%d" % len(data)})
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else len(data) - 1
        if start >= len(data) or end < start:
            body = ApiError(416, "bad_range", "range %s is outside the bundle's %d bytes" % (spec, len(data))).body()
            return json_response(body, 416, {"Content-Range": "bytes */%d" % len(data)})
        end = min(end, len(data) - 1)
        headers["Content-Range"] = "bytes %d-%d/%d" % (start, end, len(data))
        data = data[start:end + 1]
        status = 206
    return Response(data, status=status, headers=headers, content_type="application/x-abrunner-features")


@blueprint.route("/datasets/evaluation/jobs/<job_id>/ping", methods=["POST"])
def ping(job_id):
    job_id = canonical_id(job_id)
    body = json_body(PING_SPEC)
    body["lease_id"] = check_uuid(body["lease_id"], "lease_id")
    if body["stage"] not in STAGES:
        raise ApiError(400, "bad_field", "stage must be one of: %s" % ", ".join(STAGES))
    fraction = body.get("fraction")
    if fraction is not None and not 0 <= fraction <= 1:
        raise ApiError(400, "bad_field", "fraction must be between 0 and 1")
    for name in ("eta_seconds", "cells_done", "cells_total"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or value < 0 or value > 10 ** 12):
            raise ApiError(400, "bad_field", "%s must be a non-negative number" % name)
    _short(body, "runner_name", "runner_version")
    _short(body, "message", limit=1000)
    eng = engine()
    if eng.dialect.name == "postgresql":
        # Autocommit: two round trips (SELECT, conditional UPDATE) instead of four with
        # BEGIN/COMMIT; the conditional UPDATE keeps it correct (see jobs.ping).
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            answer = job_store.ping(conn, job_id, g.user_id, body, config())
    else:
        with eng.begin() as conn:
            answer = job_store.ping(conn, job_id, g.user_id, body, config())
    return json_response(answer)


@blueprint.route("/datasets/evaluation/jobs/<job_id>/fail", methods=["POST"])
def fail(job_id):
    job_id = canonical_id(job_id)
    body = json_body(FAIL_SPEC)
    lease_id = check_uuid(body["lease_id"], "lease_id")
    _short(body, "reason", limit=4000)
    with engine().begin() as conn:
        job_store.fail(conn, job_id, g.user_id, lease_id, body["reason"])
    return json_response({"job_id": job_id, "status": "failed"})


def _upload_parts():
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "upload the result as multipart/form-data with parts "
                       "lease_id, result and model (got %r)" % (request.mimetype or "no Content-Type"))
    cfg = config()
    form, files = request.form, request.files
    unknown = sorted((set(form) | set(files)) - {"lease_id", "result", "model"})
    if unknown:
        raise ApiError(400, "unknown_field", "unknown part(s): %s" % truncated_list(unknown))
    lease = form.get("lease_id")
    if lease is None:
        raise ApiError(400, "missing_field", "part 'lease_id' is required")
    lease_id = check_uuid(lease, "lease_id")
    raw_result = files["result"].read() if "result" in files else (form.get("result") or "").encode("utf-8")
    if "result" not in files and "result" not in form:
        raise ApiError(400, "missing_field", "part 'result' (the result JSON) is required")
    if "model" not in files:
        raise ApiError(400, "missing_field", "part 'model' (the Gaia .history file) is required")
    if len(raw_result) > cfg.max_result_bytes:
        raise ApiError(413, "too_large", "result JSON is larger than %d bytes" % cfg.max_result_bytes)
    model = files["model"].read(cfg.max_model_bytes + 1)
    if len(model) > cfg.max_model_bytes:
        raise ApiError(413, "too_large", "model file is larger than %d bytes" % cfg.max_model_bytes)
    try:
        result = parse_json(raw_result, cfg.max_result_bytes)
    except ApiError as exc:
        raise ApiError(422, exc.code, exc.message.replace("request body", "result part"))
    return lease_id, result, model


def _replay(job, digest: str):
    """The answer for a job that is already done: 200 for the same upload, else 409."""
    if job.upload_sha256 == digest:
        return json_response({"job_id": job.id, "status": "done", "replayed": True}, 200)
    raise conflict("result_exists", "job already has a different result")


@blueprint.route("/datasets/evaluation/jobs/<job_id>/result", methods=["PUT"])
def upload_result(job_id):
    """Validate (no lock held), spot-check (seconds, no lock held), then store under the lock."""
    job_id = canonical_id(job_id)
    lease_id, result, model = _upload_parts()
    digest = upload_digest(result, model)
    with engine().connect() as conn:
        job = job_store.get_job(conn, job_id, g.user_id)
        if job.status == "done":
            return _replay(job, digest)
        check_upload_lease(job, lease_id, now())
        size, what = len(json.dumps(result)) + len(model), "the result and model of job %s" % job_id
        quota.check(conn, g.user_id, size, config().quota_bytes, what, serialise=False)  # before the costly checks
        snapshot = json.loads(job_store.snapshot_of(conn, job).data)
        options = json.loads(job.options)
        validate_result(result, snapshot, options, job.seed, model)
    spot_check(job, snapshot, options, result, config())
    with engine().begin() as conn:
        job = job_store.get_job(conn, job_id, g.user_id, lock=True)
        if job.status == "done":
            return _replay(job, digest)
        check_upload_lease(job, lease_id, now())
        quota.check(conn, g.user_id, size, config().quota_bytes, what)
        job_store.store_result(conn, job, result, model, digest)
    return json_response({"job_id": job_id, "status": "done", "replayed": False}, 201)
