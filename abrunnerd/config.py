"""The daemon's configuration: one table of defaults, validated once, every problem
reported together with the file, the key and the line.

A bad file is exit status 78 (EX_CONFIG) so systemd does not restart-loop on it
(``RestartPreventExitStatus=78`` in the unit). A *missing* token is not an error: the
daemon stays up idle and says which file to edit (see ``load_token``).
"""
import grp
import os
import socket
import stat
from typing import Any, Dict, List, NamedTuple, Optional, Tuple
from urllib.parse import urlparse

import yaml

EX_CONFIG = 78
DEFAULT_CONFIG = "/etc/abrunnerd/abrunnerd.yaml"
DEFAULT_TOKEN_FILE = "/etc/abrunnerd/token"
DAEMON_GROUP = "abrunner"
_SIZE_SUFFIXES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class ConfigError(Exception):
    """One or more configuration problems; ``str()`` is what the user reads."""

    def __init__(self, path: str, problems: List[str]) -> None:
        self.path, self.problems = path, problems
        super().__init__(path + ": " + "; ".join(problems) if len(problems) == 1
                         else path + ":\n  " + "\n  ".join(problems))


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Config(NamedTuple):
    """The validated settings; ``load_config`` fills in the host-dependent defaults."""

    path: str
    server_url: str
    token: Optional[Secret] = None  # its repr is Secret('***')
    token_file: str = DEFAULT_TOKEN_FILE
    runner_name: str = ""  # load_config: this host's name
    poll_interval: float = 60.0
    ping_interval: float = 30.0
    work_dir: str = "/var/lib/abrunnerd"
    max_workers: int = 1  # load_config: this machine's CPU count
    nice: int = 10
    max_memory: Optional[int] = None  # bytes
    verify_tls: bool = True
    ca_bundle: Optional[str] = None
    allow_insecure_http: bool = False
    request_timeout: float = 30.0
    max_download_size: int = 4 << 30
    dbus_bus: str = "system"  # system | session | none | a D-Bus address
    log_target: str = "auto"  # auto | journal | syslog | stderr
    log_level: str = "info"

    def tls_verify(self) -> Any:
        """What requests' ``verify=`` wants."""
        if not self.verify_tls:
            return False
        return self.ca_bundle or True


# key -> (accepted YAML types, description for messages)
_KEYS: Dict[str, Tuple[tuple, str]] = {
    "server_url": ((str,), "a URL such as https://jobs.example.org"),
    "token": ((str,), "a string"),
    "token_file": ((str,), "a file path"),
    "runner_name": ((str,), "a string"),
    "poll_interval": ((int, float), "a number of seconds"),
    "ping_interval": ((int, float), "a number of seconds"),
    "work_dir": ((str,), "a directory path"),
    "max_workers": ((int,), "a whole number ≥ 1"),
    "nice": ((int,), "a whole number from 0 to 19"),
    "max_memory": ((int, str), "bytes, or a size such as 4G"),
    "verify_tls": ((bool,), "true or false"),
    "ca_bundle": ((str,), "a file path"),
    "allow_insecure_http": ((bool,), "true or false"),
    "request_timeout": ((int, float), "a number of seconds"),
    "max_download_size": ((int, str), "bytes, or a size such as 4G"),
    "dbus_bus": ((str,), "system, session, none or a D-Bus address"),
    "log_target": ((str,), "auto, journal, syslog or stderr"),
    "log_level": ((str,), "debug, info, warning or error"),
}
_REQUIRED = ("server_url",)


def parse_size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().lower().rstrip("b").rstrip("i")
    num, suffix = (text[:-1], text[-1]) if text and text[-1] in _SIZE_SUFFIXES else (text, "")
    return int(float(num) * _SIZE_SUFFIXES[suffix])


def _read_mapping(path: str, text: str) -> Dict[str, Tuple[Any, int]]:
    """Parse YAML with the safe loader, keeping each top-level key's line number."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(path, ["line %d: the file must be a mapping of key: value lines"
                                     % (node.start_mark.line + 1)])
        out: Dict[str, Tuple[Any, int]] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            key = loader.construct_object(key_node, deep=True)
            out[str(key)] = (loader.construct_object(value_node, deep=True), line)
        return out
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = "line %d: " % (mark.line + 1) if mark is not None else ""
        raise ConfigError(path, [where + "not valid YAML (%s)" % getattr(exc, "problem", exc)])
    finally:
        loader.dispose()


def load_config(path: str = DEFAULT_CONFIG, environ: Optional[Dict[str, str]] = None) -> Config:
    """Read and validate ``path``; raise ConfigError listing every problem."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(path, ["cannot read the configuration file (%s)" % exc.strerror])
    raw = _read_mapping(path, text)
    problems: List[str] = []
    values: Dict[str, Any] = {}
    for key, (value, line) in raw.items():
        where = "line %d: key '%s'" % (line, key)
        if key not in _KEYS:
            problems.append("%s: unknown key (known keys: %s)" % (where, ", ".join(sorted(_KEYS))))
            continue
        types, desc = _KEYS[key]
        if value is None and key in ("ca_bundle", "max_memory", "token"):
            continue
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            problems.append("%s: must be %s, not %r" % (where, desc, _shown(key, value)))
            continue
        try:
            values[key] = _check_value(key, value)
        except ValueError as exc:
            problems.append("%s: %s" % (where, exc))
    for key in _REQUIRED:
        if key not in raw:
            problems.append("key '%s' is missing: set it to %s" % (key, _KEYS[key][1]))
    if "token" in values and "token_file" in values:
        problems.append("line %d: key 'token': set either 'token' or 'token_file', not both"
                        % raw["token"][1])
    if "server_url" in values and not problems:
        problem = _check_url(values["server_url"], values.get("allow_insecure_http", False))
        if problem:
            problems.append("line %d: key 'server_url': %s" % (raw["server_url"][1], problem))
    if problems:
        raise ConfigError(path, problems)
    if "token" in values:
        values["token"] = Secret(values["token"])
    values.setdefault("runner_name", socket.gethostname())
    values.setdefault("max_workers", os.cpu_count() or 1)
    return Config(path=path, **values)


def _shown(key: str, value: Any) -> Any:
    return "***" if key == "token" else value


def _check_value(key: str, value: Any) -> Any:
    if key in ("poll_interval", "ping_interval", "request_timeout") and not value > 0:
        raise ValueError("must be more than 0 seconds")
    if key == "max_workers" and value < 1:
        raise ValueError("must be at least 1")
    if key == "nice" and not 0 <= value <= 19:
        raise ValueError("must be from 0 to 19")
    if key in ("max_memory", "max_download_size"):
        try:
            size = parse_size(value)
        except (ValueError, KeyError):
            raise ValueError("must be bytes or a size such as 4G, not %r" % (value,))
        if size <= 0:
            raise ValueError("must be more than 0")
        return size
    if key == "log_target" and value not in ("auto", "journal", "syslog", "stderr"):
        raise ValueError("must be auto, journal, syslog or stderr, not %r" % value)
    if key == "log_level" and value.lower() not in ("debug", "info", "warning", "error"):
        raise ValueError("must be debug, info, warning or error, not %r" % value)
    if key == "token" and not value.strip():
        raise ValueError("is empty")
    if key == "server_url":
        return value.rstrip("/")
    return value


def _check_url(url: str, allow_insecure_http: bool) -> Optional[str]:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return "must be an http(s) URL such as https://jobs.example.org, not %r" % url
    if parsed.scheme == "http" and not allow_insecure_http and not _is_loopback(parsed.hostname):
        return ("plain http to %s would send the token unencrypted: use https, or set "
                "allow_insecure_http: true if you really mean it" % parsed.hostname)
    return None


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class TokenError(ConfigError):
    """The token file exists but must not be used as it is."""


def load_token(cfg: Config) -> Optional[Secret]:
    """The token, or None when none is configured yet (the daemon then idles).

    Refuses a token file that others than root and the daemon's group can read.
    """
    if cfg.token is not None:
        return cfg.token
    path = cfg.token_file
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TokenError(cfg.path, ["key 'token_file': cannot read %s (%s)" % (path, exc.strerror)])
    try:
        st = os.fstat(fd)
        if st.st_mode & stat.S_IRWXO:
            raise TokenError(cfg.path, [
                "the token file %s can be read by every user (mode %o): run "
                "'chown root:%s %s && chmod 0640 %s'"
                % (path, stat.S_IMODE(st.st_mode), DAEMON_GROUP, path, path)])
        if st.st_mode & stat.S_IRWXG and st.st_gid not in _allowed_gids():
            raise TokenError(cfg.path, [
                "the token file %s is readable by group %s: run 'chown root:%s %s' "
                "(or chmod 0600 it)" % (path, _group_name(st.st_gid), DAEMON_GROUP, path)])
        data = os.read(fd, 1 << 16)
    finally:
        os.close(fd)
    text = data.decode("utf-8", "replace").strip()
    return Secret(text) if text else None


def _allowed_gids() -> List[int]:
    gids = [0, os.getgid()]
    try:
        gids.append(grp.getgrnam(DAEMON_GROUP).gr_gid)
    except KeyError:
        pass
    return gids


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
