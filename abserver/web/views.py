"""Routes of the owner's pages. Every handler reads only the signed-in owner's rows (queries.py)."""
import gzip
import json
import logging
import time
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from flask import (Blueprint, Response, abort, current_app, flash, g, redirect, render_template, request,
                   url_for)
from flask_wtf.csrf import CSRFError, ValidationError, generate_csrf, validate_csrf
from werkzeug.exceptions import HTTPException

from .. import events, jobs as job_store
from ..context import config
from ..errors import ApiError
from ..options import DEFAULTS, KERNELS, PREPROCESSING, OptionsError
from ..timefmt import now
from . import analysis, auth, queries, renders

log = logging.getLogger("abserver.web")
blueprint = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/assets")
PUBLIC = {"web.login", "web.static"}
LIVE_SECONDS = 3  # how often the job page's script refreshes a running job's progress
FILES = {"model.history": "application/octet-stream", "result.json": "application/json",
         "predictions.json": "application/json", "ranking.tsv": "text/tab-separated-values; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def _engine():
    return current_app.extensions["abserver.engine"]


# -- request plumbing -----------------------------------------------------------------------
@blueprint.before_request
def _guard():
    if request.endpoint == "web.static":
        return None  # CSS, script, icon: public, no session look-up
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError as exc:
            raise CSRFError(str(exc))
    g.web_user = auth.current_user()
    if g.web_user is None and request.endpoint not in PUBLIC:
        if request.method == "GET" and request.endpoint not in ("web.live", "web.jobs_live", "web.download", "web.plot"):
            return redirect(url_for("web.login", next=request.full_path if request.query_string else request.path))
        abort(401)
    return None


@blueprint.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    if request.endpoint != "web.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.app_template_global()
def csrf_field() -> str:
    return generate_csrf()


@blueprint.app_template_filter("when")
def _when(ts: Optional[float]) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts is not None else "—"


@blueprint.app_template_filter("duration")
def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return "%d s" % seconds
    if seconds < 3600:
        return "%d min %02d s" % divmod(seconds, 60)
    hours, rest = divmod(seconds, 3600)
    return "%d h %02d min" % (hours, rest // 60)


@blueprint.app_template_filter("exp2")
def _exp2(exponent: int) -> str:
    return analysis.exp2(exponent)


def _user_id() -> int:
    return g.web_user[0]


def _page(template: str, status: int = 200, **context: Any) -> Tuple[str, int]:
    return render_template(template, user=g.get("web_user"), **context), status


@blueprint.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return _page("error.html", exc.status, title="Not found" if exc.status == 404 else "Error",
                 message=exc.message)


@blueprint.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError):
    return _page("error.html", 400, title="Form expired",
                 message="This form is missing its security token or the token expired (%s) Reload the page "
                         "and submit it again." % exc.description)


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    messages = {401: "Sign in to see this page.", 404: "There is nothing here."}
    return _page("error.html", exc.code or 500, title=exc.name,
                 message=messages.get(exc.code or 0, exc.description or exc.name))


def _safe_next(target: Optional[str]) -> str:
    """Only a path on this site (no scheme, host or '//'): no open redirect after sign-in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("web.jobs")


# -- sign-in ----------------------------------------------------------------------------------
@blueprint.route("/", methods=["GET"])
def index():
    return redirect(url_for("web.jobs"))


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    nxt = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if g.web_user is not None:
            return redirect(nxt)
        return _page("login.html", next=nxt)
    client = auth.client_key()
    if auth.rate_limited(client):
        log.warning("sign-in refused: too many failed attempts from %s", client)
        body, status = _page("login.html", 429, next=nxt,
                             error="Too many failed sign-ins from your address. Wait %d minutes and try again."
                             % (auth.LOGIN_WINDOW // 60))
        return Response(body, status, headers={"Retry-After": str(auth.LOGIN_WINDOW)})
    name = auth.sign_in(request.form.get("token", ""))
    if name is None:
        log.info("failed sign-in from %s", client)
        return _page("login.html", 401, next=nxt,
                     error="That token is not known here. Paste the token your server's admin gave you "
                           "(abserver add-user prints it once).")
    log.info("user %s signed in from %s", name, client)
    return redirect(nxt, 303)


@blueprint.route("/logout", methods=["POST"])
def logout():
    auth.sign_out()
    flash("You are signed out.")
    return redirect(url_for("web.login"), 303)


# -- datasets -----------------------------------------------------------------------------------
@blueprint.route("/datasets", methods=["GET"])
def datasets():
    with _engine().connect() as conn:
        rows = queries.owner_datasets(conn, _user_id())
    return _page("datasets.html", datasets=rows)


@blueprint.route("/datasets/<dataset_id>", methods=["GET"])
def dataset(dataset_id):
    with _engine().connect() as conn:
        row = queries.dataset(conn, dataset_id, _user_id())
        classes = json.loads(row.classes)
        mbids = sorted({m for c in classes for m in c["recordings"]})
        artist_of = queries.artists(conn, mbids, row.owner_id)
        job_rows = queries.owner_jobs(conn, _user_id(), row.id, limit=50)
    class_rows, per_artist = _class_table(classes, artist_of)
    ts = now()
    return _page("dataset.html", dataset=row, classes=class_rows, artists=per_artist[:100],
                 artists_total=len(per_artist), recordings=len(mbids),
                 missing=sum(1 for m in mbids if m not in artist_of),
                 jobs=[(j, queries.live_state(j, ts)) for j in job_rows])


def _class_table(classes: List[Dict[str, Any]], artist_of: Dict[str, Optional[str]]):
    names = [c["name"] for c in classes]
    rows, per_artist = [], {}
    for cls in classes:
        recs = sorted(set(cls["recordings"]))
        arts = [artist_of.get(m) for m in recs]
        rows.append({"name": cls["name"], "description": cls.get("description") or "", "recordings": len(recs),
                     "documents": sum(1 for m in recs if m in artist_of), "artists": len({a for a in arts if a}),
                     "no_artist": sum(1 for m, a in zip(recs, arts) if m in artist_of and not a)})
        for a in arts:
            if a:
                per_artist.setdefault(a, {n: 0 for n in names})[cls["name"]] += 1
    ranked = sorted(per_artist.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    return rows, [(a, [counts[n] for n in names], sum(counts.values())) for a, counts in ranked]


@blueprint.route("/datasets/<dataset_id>/submit", methods=["GET", "POST"])
def submit(dataset_id):
    with _engine().connect() as conn:
        row = queries.dataset(conn, dataset_id, _user_id())
    form = _submit_defaults() if request.method == "GET" else _submit_form()
    error = None
    if request.method == "POST":
        try:
            options, seed, location = _parse_submit(form)
            job_id = job_store.submit(_engine(), row.id, _user_id(), location, options, seed,
                                      quota_bytes=config().quota_bytes)
            flash("Job submitted: %d configurations queued; runners see it once its snapshot is prepared." % (
                len(options["c_values"]) * len(options["gamma_values"]) * len(options["preprocessing_values"])
                * len(KERNELS)))
            return redirect(url_for("web.job", job_id=job_id), 303)
        except OptionsError as exc:
            error = str(exc)
        except ApiError as exc:
            if exc.status == 404:
                raise
            error = exc.message
    return _page("submit.html", 400 if error else 200, dataset=row, form=form, error=error,
                 preprocessing=PREPROCESSING)


def _exponents(values: List[int]) -> str:
    return " ".join(str(v) for v in values)


def _submit_defaults() -> Dict[str, Any]:
    return {"c_values": _exponents(DEFAULTS["c_values"]), "gamma_values": _exponents(DEFAULTS["gamma_values"]),
            "preprocessing": list(DEFAULTS["preprocessing_values"]), "artist_filter": False, "normalize": False,
            "seed": "42", "location": "remote"}


def _submit_form() -> Dict[str, Any]:
    f = request.form
    return {"c_values": f.get("c_values", "")[:400], "gamma_values": f.get("gamma_values", "")[:400],
            "preprocessing": f.getlist("preprocessing")[:len(PREPROCESSING) + 1],
            "artist_filter": f.get("artist_filter") == "on", "normalize": f.get("normalize") == "on",
            "seed": f.get("seed", "42")[:20], "location": f.get("location", "remote")[:10]}


def _int_list(text: str, label: str) -> List[int]:
    values = []
    for part in text.replace(",", " ").split():
        try:
            values.append(int(part.replace("−", "-")))
        except ValueError:
            raise OptionsError("%s: %r is not a whole number; write exponents such as -5 -3 -1 1 3" % (label, part))
    return values


def _parse_submit(form: Dict[str, Any]) -> Tuple[Dict[str, Any], int, str]:
    options = {"c_values": _int_list(form["c_values"], "C exponents"),
               "gamma_values": _int_list(form["gamma_values"], "γ exponents"),
               "preprocessing_values": [p for p in PREPROCESSING if p in form["preprocessing"]],
               "filter_type": "artist" if form["artist_filter"] else None,
               "normalize": bool(form["normalize"])}
    unknown = [p for p in form["preprocessing"] if p not in PREPROCESSING]
    if unknown:
        raise OptionsError("unknown preprocessing set %r" % unknown[0])
    if not options["preprocessing_values"]:
        raise OptionsError("choose at least one preprocessing set")
    try:
        seed = int(form["seed"])
    except ValueError:
        raise OptionsError("seed must be a whole number between 0 and %d" % job_store.MAX_SEED)
    if form["location"] not in ("remote", "local"):
        raise OptionsError("location must be remote or local")
    return options, seed, form["location"]


# -- jobs ------------------------------------------------------------------------------------------
def _jobs_context() -> Dict[str, Any]:
    with _engine().connect() as conn:
        rows = queries.owner_jobs(conn, _user_id())
    ts = now()
    live = [(j, queries.live_state(j, ts)) for j in rows]
    return {"jobs": live, "running": any(not s["finished"] for _, s in live), "live_seconds": LIVE_SECONDS}


@blueprint.route("/jobs", methods=["GET"])
def jobs():
    return _page("jobs.html", **_jobs_context())


@blueprint.route("/jobs/live", methods=["GET"])
def jobs_live():
    """The jobs table alone, fetched by static/live.js while any job runs."""
    context = _jobs_context()
    response = Response(render_template("_jobs_table.html", **context), content_type="text/html; charset=utf-8")
    response.headers["X-Job-Status"] = "running" if context["running"] else "done"
    return response


def _job_context(job_id: str) -> Dict[str, Any]:
    with _engine().connect() as conn:
        row = queries.job(conn, job_id, _user_id())
        history = events.history(conn, row.id)
        total = events.count(conn, row.id)
    return {"job": row, "state": queries.live_state(row, now()), "history": history,
            "history_hidden": max(0, total - len(history)), "options": json.loads(row.options),
            "live_seconds": LIVE_SECONDS}


@blueprint.route("/jobs/<job_id>", methods=["GET"])
def job(job_id):
    return _page("job.html", **_job_context(job_id))


@blueprint.route("/jobs/<job_id>/live", methods=["GET"])
def live(job_id):
    """The job page's progress section alone, fetched by static/live.js while the job runs."""
    context = _job_context(job_id)
    response = Response(render_template("_live.html", **context), content_type="text/html; charset=utf-8")
    response.headers["X-Job-Status"] = context["state"]["status"]
    return response


@blueprint.route("/jobs/<job_id>/cancel", methods=["POST"])
def cancel(job_id):
    try:
        with _engine().begin() as conn:
            job_store.cancel(conn, queries.job(conn, job_id, _user_id()).id, _user_id())
        flash("Job canceled. A runner working on it stops at its next ping.")
    except ApiError as exc:
        if exc.status == 404:
            raise
        flash("Not canceled: %s." % exc.message)
    return redirect(url_for("web.job", job_id=job_id), 303)


# -- results ---------------------------------------------------------------------------------------
def _result_job(job_id: str):
    with _engine().connect() as conn:
        row = queries.job(conn, job_id, _user_id(), with_result=True)
        if row.status != "done" or not row.result:
            raise ApiError(404, "not_found", "This job has no result yet (it is %s)." % row.status)
        classes = queries.snapshot_classes(conn, row)
    return row, json.loads(row.result), classes


def _predictions(row, classes) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    def make() -> bytes:
        from abrunnerd.gaia.history import loads_history
        from abrunnerd.trainer.bundle import documents_for_prediction
        from abrunnerd.trainer.model import predict_documents

        with _engine().connect() as conn:
            model, bundle = queries.model_bytes(conn, row), queries.bundle_bytes(conn, row)
        docs = documents_for_prediction(bundle)  # either bundle version
        wanted = set(analysis.class_of(classes))
        preds = predict_documents(loads_history(model), {m: d for m, d in docs.items() if m in wanted})
        return json.dumps(preds, sort_keys=True, indent=1).encode("utf-8")

    try:
        data = renders.cached(_engine(), row.id, row.upload_sha256, "predictions.json", make)
    except Exception as exc:  # a model the server cannot replay still has a result page
        log.warning("job %s: predictions unavailable: %s", row.id, exc)
        return None, "the server could not apply the model to the recordings (%s)" % type(exc).__name__
    return json.loads(gzip.decompress(data)), None


@blueprint.route("/jobs/<job_id>/result", methods=["GET"])
def result(job_id):
    row, res, classes = _result_job(job_id)
    options = json.loads(row.options)
    names = [c["name"] for c in classes]
    panels = analysis.landscape(res, options, KERNELS)
    predictions, predictions_error = _predictions(row, classes)
    wrong = analysis.misclassified(predictions, analysis.class_of(classes)) if predictions else []
    ranking = analysis.ranking(res)
    return _page("result.html", job=row, result=res, best=res["parameters"]["model"], options=options,
                 confusion=analysis.confusion(res["confusion_matrix"], names), names=names, panels=panels,
                 tie_band=analysis.TIE_BAND, misclassified=wrong, predictions_error=predictions_error,
                 n_predicted=len(predictions or {}), ranking=ranking[:20], n_configs=len(ranking),
                 n_failed=sum(1 for r in ranking if r["status"] != "ok"))


def _gzip_response(data: bytes, content_type: str, filename: Optional[str] = None) -> Response:
    headers = {}
    if filename:
        headers["Content-Disposition"] = "attachment; filename=%s" % filename
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
    else:
        data = gzip.decompress(data)
    return Response(data, content_type=content_type, headers=headers)


@blueprint.route("/jobs/<job_id>/plots/<name>.svg", methods=["GET"])
def plot(job_id, name):
    from . import plots

    row, res, classes = _result_job(job_id)
    if name == "confusion":
        def make() -> bytes:
            return plots.confusion_svg(analysis.confusion(res["confusion_matrix"], [c["name"] for c in classes]))
    else:
        panels = {"grid-%s-%s" % (p.preprocessing, p.kernel): p
                  for p in analysis.landscape(res, json.loads(row.options), KERNELS)}
        if name not in panels:
            abort(404)
        values = [v for p in panels.values() for r in p.accuracy for v in r if v is not None]
        lo, hi = min(values), max(values)

        def make() -> bytes:
            return plots.grid_svg(panels[name], lo, hi)
    data = renders.cached(_engine(), row.id, row.upload_sha256, "%s.svg" % name, make)
    response = _gzip_response(data, "image/svg+xml")
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"  # colour bars are inline PNGs
    return response


@blueprint.route("/jobs/<job_id>/files/<name>", methods=["GET"])
def download(job_id, name):
    if name not in FILES:
        abort(404)
    row, res, classes = _result_job(job_id)
    filename = "%s-%s" % (row.id, name)
    if name == "model.history":
        with _engine().connect() as conn:
            model = queries.model_bytes(conn, row)
        if model is None:
            abort(404)
        return Response(model, content_type=FILES[name],
                        headers={"Content-Disposition": "attachment; filename=%s.history" % row.id})
    if name == "result.json":
        body = (json.dumps(res, sort_keys=True, indent=1) + "\n").encode("utf-8")
    elif name == "ranking.tsv":
        body = analysis.ranking_tsv(res).encode("utf-8")
    else:
        predictions, error = _predictions(row, classes)
        if predictions is None:
            return _page("error.html", 503, title="Predictions unavailable", message=error)
        body = (json.dumps(predictions, sort_keys=True, indent=1) + "\n").encode("utf-8")
    return Response(body, content_type=FILES[name], headers={"Content-Disposition": "attachment; filename=%s"
                                                              % filename})
