"""The server's answers, parsed at the edge into checked values (docs/protocol.md).

Everything here is hostile input: types are checked, ids canonicalised (``ids``),
strings and lists bounded, numbers clamped to documented ranges. A field the runner
needs that is missing or of the wrong type is a ``BadAnswer`` naming the field, which
the runner reports to the server as the job's failure reason (when it can) and then
moves on; optional fields that are wrong are ignored (ping answers) or clamped.
"""
import math
import re
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from abrunnerd.ids import BadId, canonical_uuid

# Documented bounds (docs/runner.md "Threat model"); server answers are clamped into them.
PING_INTERVAL_RANGE = (1.0, 3600.0)
LEASE_SECONDS_RANGE = (10.0, 7 * 86400.0)
SEED_RANGE = (0, 2 ** 31 - 1)
MAX_JOBS_LISTED = 10000
MAX_CLASSES = 1000
MAX_RECORDINGS = 1000000
MAX_NAME = 1000
MAX_GRID_VALUES = 32
_OPTION_KEYS = ("c_values", "gamma_values", "preprocessing_values", "filter_type", "normalize")
_SHA256 = re.compile(r"\A[0-9a-fA-F]{64}\Z")


class BadAnswer(ValueError):
    """The server's answer does not have the protocol's shape; ``str()`` says which field."""


class JobEntry(NamedTuple):
    job_id: str
    dataset_name: str
    created: str


class Lease(NamedTuple):
    lease_id: Optional[str]
    features_url: Optional[str]
    features_sha256: Optional[str]
    features_size: Optional[int]
    seed: Optional[int]
    ping_interval: Optional[float]


class PingAnswer(NamedTuple):
    cancel: bool
    stalled: bool
    ping_interval: Optional[float]


def clamp_number(value: Any, bounds: Tuple[float, float]) -> Optional[float]:
    """A finite number clamped into ``bounds``; None for anything else (bool, NaN, text…)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    if math.isnan(value):
        return None
    return min(bounds[1], max(bounds[0], value))


def text(value: Any, limit: int = MAX_NAME) -> str:
    """A string field for display: non-strings become '', long ones are cut."""
    return value[:limit] if isinstance(value, str) else ""


def parse_job_list(body: Any) -> Tuple[List[JobEntry], List[str]]:
    """The pending jobs, and one problem line per entry left out (bad id, wrong shape)."""
    jobs = body.get("jobs") if isinstance(body, dict) else None
    if not isinstance(jobs, list):
        raise BadAnswer("no 'jobs' list in the answer")
    entries, problems = [], []
    for index, entry in enumerate(jobs[:MAX_JOBS_LISTED]):
        if not isinstance(entry, dict):
            problems.append("jobs[%d] is %s, not an object" % (index, type(entry).__name__))
            continue
        try:
            job_id = canonical_uuid(entry.get("job_id"), "job_id")
        except BadId as exc:
            problems.append("jobs[%d]: %s" % (index, exc))
            continue
        entries.append(JobEntry(job_id, text(entry.get("dataset_name")), text(entry.get("created"), 64)))
    if len(jobs) > MAX_JOBS_LISTED:
        problems.append("the list has %d jobs; only the first %d are looked at" % (len(jobs), MAX_JOBS_LISTED))
    return entries, problems


def parse_details(job_id: str, body: Any) -> Dict[str, Any]:
    """Job details with the fields the runner uses checked and canonicalised.

    Returns a fresh mapping (the saved ``job.json``): ``dataset_id``, ``seed``,
    ``options`` and ``dataset`` (``name``, ``classes``: ``[{name, recordings}]``)."""
    if not isinstance(body, dict):
        raise BadAnswer("job details are %s, not an object" % type(body).__name__)
    out = {"job_id": job_id}  # type: Dict[str, Any]
    try:
        out["dataset_id"] = canonical_uuid(body.get("dataset_id"), "dataset_id")
    except BadId as exc:
        raise BadAnswer(str(exc)) from None
    seed = body.get("seed", 42)
    if seed is None:
        seed = 42
    if isinstance(seed, bool) or not isinstance(seed, int) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise BadAnswer("'seed' must be a whole number from 0 to 2^31-1")
    out["seed"] = seed
    out["options"] = _options(body.get("options"))
    out["dataset"] = _dataset(body.get("dataset"))
    return out


def _options(options: Any) -> Dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise BadAnswer("'options' is %s, not an object" % type(options).__name__)
    unknown = sorted(str(k)[:40] for k in options if k not in _OPTION_KEYS)
    if unknown:
        raise BadAnswer("unknown job option(s) %s" % ", ".join(unknown[:5]))
    out = {}  # type: Dict[str, Any]
    for key in ("c_values", "gamma_values"):
        if key in options and options[key] is not None:
            values = options[key]
            if not isinstance(values, list) or not 0 < len(values) <= MAX_GRID_VALUES or not all(
                    isinstance(v, int) and not isinstance(v, bool) and abs(v) <= 30 for v in values):
                raise BadAnswer("options.%s must be a list of 1 to %d whole numbers from -30 to 30"
                                % (key, MAX_GRID_VALUES))
            out[key] = values
    if options.get("preprocessing_values") is not None:
        values = options["preprocessing_values"]
        if not isinstance(values, list) or not 0 < len(values) <= 16 or not all(
                isinstance(v, str) and len(v) <= 32 for v in values):
            raise BadAnswer("options.preprocessing_values must be a list of preprocessing names")
        out["preprocessing_values"] = values
    if options.get("filter_type") not in (None, "artist"):
        raise BadAnswer("options.filter_type must be null or \"artist\"")
    out["filter_type"] = options.get("filter_type")
    if not isinstance(options.get("normalize", False), bool):
        raise BadAnswer("options.normalize must be true or false")
    out["normalize"] = options.get("normalize", False)
    return out


def _dataset(dataset: Any) -> Dict[str, Any]:
    if not isinstance(dataset, dict):
        raise BadAnswer("'dataset' is %s, not an object" % ("missing" if dataset is None else type(dataset).__name__))
    classes = dataset.get("classes")
    if not isinstance(classes, list) or not 0 < len(classes) <= MAX_CLASSES:
        raise BadAnswer("dataset 'classes' must be a list of 1 to %d classes" % MAX_CLASSES)
    out_classes, total = [], 0
    for index, cls in enumerate(classes):
        name = cls.get("name") if isinstance(cls, dict) else None
        recordings = cls.get("recordings") if isinstance(cls, dict) else None
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or not isinstance(recordings, list):
            raise BadAnswer("dataset classes[%d] must be an object with a 'name' (1 to %d characters) and a "
                            "'recordings' list" % (index, MAX_NAME))
        total += len(recordings)
        if total > MAX_RECORDINGS:
            raise BadAnswer("the dataset has more than %d recordings" % MAX_RECORDINGS)
        try:
            mbids = [canonical_uuid(m, "classes[%d] recording" % index) for m in recordings]
        except BadId as exc:
            raise BadAnswer("dataset %s" % exc) from None
        out_classes.append({"name": name, "recordings": mbids})
    name = dataset.get("name")
    return {"name": name[:MAX_NAME] if isinstance(name, str) else "", "classes": out_classes}


def parse_lease(body: Any, max_size: int) -> Lease:
    """A claim answer. Optional fields may be missing or null; present ones must be right."""
    if not isinstance(body, dict):
        raise BadAnswer("the claim answer is %s, not an object" % type(body).__name__)
    lease_id = _optional_str(body, "lease_id", 200)
    url = _optional_str(body, "features_url", 4000)
    sha = _optional_str(body, "features_sha256", 64)
    if sha is not None and not _SHA256.match(sha):
        raise BadAnswer("'features_sha256' is not 64 hex digits")
    size = body.get("features_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise BadAnswer("'features_size' must be a whole number of bytes, not %s" % _kind(size))
    if size is not None and size > max_size:
        raise BadAnswer("'features_size' %d is more than max_download_size (%d)" % (size, max_size))
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]):
        raise BadAnswer("'seed' must be a whole number from 0 to 2^31-1")
    return Lease(lease_id, url, sha.lower() if sha else None, size, seed,
                 clamp_number(body.get("ping_interval"), PING_INTERVAL_RANGE))


def parse_ping_answer(body: Any) -> PingAnswer:
    """A ping answer: only ``cancel: true`` cancels; wrong types count as absent."""
    if not isinstance(body, dict):
        return PingAnswer(False, False, None)
    return PingAnswer(body.get("cancel") is True, body.get("stalled") is True,
                      clamp_number(body.get("ping_interval"), PING_INTERVAL_RANGE))


def _optional_str(body: Dict[str, Any], key: str, limit: int) -> Optional[str]:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadAnswer("'%s' must be a string of 1 to %d characters, not %s" % (key, limit, _kind(value)))
    return value


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "a %d-character string" % len(value)
    return type(value).__name__
