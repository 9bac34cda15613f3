"""``/etc/abserver/abserver.yaml``: the packaged server's settings, the defaults of the CLI.

Loaded with YAML's safe loader; every key is known, typed and range-checked, and a
problem names the file, the line and the key. A missing file means the built-in
defaults (a source checkout, the tests). ``$ABSERVER_CONFIG`` or ``abserver --config``
choose another file. Command-line flags still win over the file.
"""
import os
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import yaml

DEFAULT_PATH = "/etc/abserver/abserver.yaml"
MAX_FILE_BYTES = 64 * 1024


class Key(NamedTuple):
    kind: type
    low: Optional[float]
    high: Optional[float]
    help: str


# key -> (type, minimum, maximum, meaning). The ServerConfig keys keep its names.
KEYS: Dict[str, Key] = {
    "db": Key(str, None, None, "database URL (sqlite:////var/lib/abserver/abserver.db, postgresql://…)"),
    "bind": Key(str, None, None, "HOST:PORT to listen on (default 127.0.0.1:8080)"),
    "workers": Key(int, 1, 64, "gunicorn worker processes"),
    "threads": Key(int, 1, 256, "threads per gunicorn worker"),
    "timeout": Key(int, 5, 3600, "gunicorn worker timeout, seconds"),
    "builders": Key(int, 0, 16, "build-worker processes serve runs (0: run 'abserver build-worker' yourself)"),
    "build_poll": Key(float, 0.05, 60.0, "seconds between a build worker's looks for jobs when idle"),
    "build_lease_seconds": Key(int, 5, 3600, "a build not renewed this long is taken by another build worker"),
    "lease_seconds": Key(int, 10, 86400, "a claim or ping keeps the job this long"),
    "ping_interval": Key(int, 1, 3600, "the ping pace asked of runners (an upper bound for them)"),
    "stall_seconds": Key(int, 60, 7 * 86400, "cells_done frozen this long while training => stalled"),
    "spot_check_cells": Key(int, 0, 100, "grid cells recomputed per upload; 0 disables"),
    "spot_check_max_recordings": Key(int, 0, 1000000, "larger datasets are not spot-checked"),
    "spot_check_tolerance": Key(float, 0.0, 1.0, "max fold-accuracy difference, as a fraction"),
    "max_result_bytes": Key(int, 1024, 1 << 30, "result JSON size limit"),
    "max_model_bytes": Key(int, 1024, 1 << 34, "model (.history) size limit"),
    "quota_bytes": Key(int, 0, 1 << 50, "bytes each owner may store (documents, bundles, datasets, results, "
                       "models); 0: no quota"),
}


class SettingsError(Exception):
    """``str()`` is the one line the operator reads: file, line, key, what to do."""


def config_path(explicit: Optional[str] = None) -> str:
    return explicit or os.environ.get("ABSERVER_CONFIG") or DEFAULT_PATH


def load(path: Optional[str] = None) -> Dict[str, Any]:
    """The validated settings of ``path`` ({} when the default file does not exist)."""
    path = config_path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        if path == DEFAULT_PATH:
            return {}
        raise SettingsError("%s: no such file" % path)
    except OSError as exc:
        raise SettingsError("%s: cannot read it (%s); run abserver as root or as user abserver "
                            "(sudo -u abserver abserver ...)" % (path, exc.strerror))
    try:
        import stat
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SettingsError("%s: not a regular file" % path)
        data = os.read(fd, MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise SettingsError("%s: larger than %d bytes; this is not a settings file" % (path, MAX_FILE_BYTES))
    return parse(data.decode("utf-8", "replace"), path)


def parse(text: str, path: str) -> Dict[str, Any]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        values = yaml.safe_load(text) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " line %d" % (mark.line + 1) if mark is not None else ""
        raise SettingsError("%s%s: not valid YAML (%s)" % (path, where, getattr(exc, "problem", exc)))
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise SettingsError("%s: expected 'key: value' lines" % path)
    if not isinstance(values, dict):
        raise SettingsError("%s: expected 'key: value' lines" % path)
    lines = {k.value: k.start_mark.line + 1 for k, _ in root.value if isinstance(k, yaml.ScalarNode)}
    problems: List[str] = []
    out: Dict[str, Any] = {}
    for key, value in values.items():
        where = "%s line %s: " % (path, lines.get(key, "?"))
        spec = KEYS.get(key) if isinstance(key, str) else None
        if spec is None:
            problems.append(where + "unknown key %r (known: %s)" % (key, ", ".join(sorted(KEYS))))
            continue
        problem, value = _check(key, value, spec)
        if problem:
            problems.append(where + problem)
        else:
            out[key] = value
    if problems:
        raise SettingsError("; ".join(problems))
    return out


def _check(key: str, value: Any, spec: Key) -> Tuple[str, Any]:
    if spec.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, spec.kind):
        return "%s must be %s (%s), not %r" % (key, {int: "an integer", float: "a number", str: "a string"}[
            spec.kind], spec.help, value), None
    if spec.kind in (int, float):
        if value != value or (spec.low is not None and value < spec.low) or \
                (spec.high is not None and value > spec.high):
            return "%s must be between %s and %s (%s), not %r" % (key, spec.low, spec.high, spec.help, value), None
    if key == "bind":
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            return "bind must be HOST:PORT such as 127.0.0.1:8080, not %r" % value, None
    if key == "db" and "://" not in value:
        return "db must be a database URL such as sqlite:////var/lib/abserver/abserver.db, not %r" % value, None
    return "", value


def cli_defaults(settings: Dict[str, Any], dests: List[str]) -> Dict[str, Any]:
    """The parser defaults for the option destinations a command has (``bind`` is also
    offered as ``listen`` for the development server's flag)."""
    out = {k: v for k, v in settings.items() if k in dests}
    if "bind" in settings and "listen" in dests and "bind" not in dests:
        out["listen"] = settings["bind"]
    return out
