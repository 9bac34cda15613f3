"""Strict request-body checks: unknown fields and wrong types are 400, never ignored."""
import json
import uuid
from typing import Any, Dict, Tuple

from .errors import ApiError, bad_request
from .text import canonical_uuid, truncated_list

# field name -> (accepted types, required)
Spec = Dict[str, Tuple[tuple, bool]]

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
               type(None): "null", list: "a list", dict: "an object"}


def _no_constant(name: str) -> Any:
    raise ValueError("%s is not a JSON number" % name)


def parse_json(raw: bytes, max_bytes: int = 1024 * 1024, allow_nan: bool = False) -> Any:
    """Decode a JSON request body, with clear errors for the usual mistakes.

    NaN and ±Infinity (which Python's json accepts) are refused unless ``allow_nan``:
    only low-level documents may carry them, as Essentia writes them."""
    if len(raw) > max_bytes:
        raise ApiError(413, "too_large", "request body is larger than %d bytes" % max_bytes)
    if not raw:
        raise bad_request("invalid_json", "request body is empty; send a JSON object")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=None if allow_nan else _no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad_request("invalid_json", "request body is not valid JSON: %s" % str(exc)[:200])
    check_strings(body)
    return body


def _bad_string(value: str) -> bool:
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        return True
    return False


def check_strings(node: Any, depth: int = 0) -> None:
    """Reject NUL characters and lone surrogates anywhere (databases cannot store them)."""
    if depth > 64:
        raise bad_request("invalid_json", "request body is nested more than 64 levels deep")
    if isinstance(node, str):
        if _bad_string(node):
            raise bad_request("bad_string", "strings must be valid Unicode without NUL characters")
    elif isinstance(node, dict):
        for key, value in node.items():
            check_strings(key, depth + 1)
            check_strings(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            check_strings(value, depth + 1)


def check_fields(body: Any, spec: Spec, what: str = "request body") -> Dict[str, Any]:
    """Return ``body`` after checking it is an object with exactly the fields of ``spec``."""
    if not isinstance(body, dict):
        raise bad_request("invalid_body", "%s must be a JSON object" % what)
    unknown = sorted(set(body) - set(spec))
    if unknown:
        raise bad_request("unknown_field", "unknown field(s) in %s: %s" % (what, truncated_list(unknown)))
    for name, (types, required) in spec.items():
        if name not in body:
            if required:
                raise bad_request("missing_field", "field %r is required in %s" % (name, what))
            continue
        value = body[name]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            expected = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            raise bad_request("bad_field", "field %r of %s must be %s" % (name, what, expected))
    return body


def check_uuid(value: str, name: str) -> str:
    """Canonical lower-case UUID text, or 400."""
    canonical = canonical_uuid(value)
    if canonical is None:
        raise bad_request("bad_field", "%s must be a UUID (got %r)" % (name, str(value)[:64]))
    return canonical
