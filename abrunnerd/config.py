"""The daemon's configuration: one table of defaults, validated once, every problem
reported together with the file, the key and the line.

A bad file is exit status 78 (EX_CONFIG) so systemd does not restart-loop on it
(``RestartPreventExitStatus=78`` in the unit). A *missing* token is not an error: the
daemon stays up idle and says which file to edit (see ``load_token``).
"""
import grp
import ipaddress
import math
import os
import socket
import stat
import unicodedata
from typing import Any, Dict, List, NamedTuple, Optional, Tuple
from urllib.parse import urlparse

import yaml

EX_CONFIG = 78
DEFAULT_CONFIG = "/etc/abrunnerd/abrunnerd.yaml"
DEFAULT_TOKEN_FILE = "/etc/abrunnerd/token"
DEFAULT_WORK_DIR = "/var/lib/abrunnerd"
DAEMON_GROUP = "abrunner"
_SIZE_SUFFIXES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
MAX_CONFIG_BYTES = 1 << 20
MAX_TOKEN_BYTES = 4096
RUNNER_NAME_MAX = 255  # the server's limit (ClaimRequest.runner_name maxLength)

# Documented bounds of every number (docs/runner.md, abrunnerd.yaml(5)): refused outside them.
BOUNDS: Dict[str, Tuple[float, float]] = {
    "poll_interval": (1, 86400),
    "ping_interval": (1, 3600),
    "request_timeout": (1, 600),
    "max_workers": (1, 1024),
    "nice": (0, 19),
    "max_memory": (1 << 20, 1 << 50),
    "max_download_size": (1 << 20, 1 << 40),
}


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
    work_dir: str = DEFAULT_WORK_DIR
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
    """Bytes from an int or a text such as ``4G``/``512MiB``; ValueError for anything else
    (also for infinities, NaN and absurd lengths)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if len(text) > 32:
        raise ValueError("too long")
    text = text[:-1] if text.endswith("b") else text
    text = text[:-1] if text.endswith("i") else text
    num, suffix = (text[:-1], text[-1]) if text and text[-1] in _SIZE_SUFFIXES else (text, "")
    number = float(num)
    if not math.isfinite(number) or number > 1 << 60:
        raise ValueError("not a finite size")
    return int(number * _SIZE_SUFFIXES[suffix])


def read_regular_file(path: str, limit: int, follow: bool = True) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or OSError/ValueError.

    A FIFO, device, socket or directory is refused from ``stat`` before any open, and
    the open itself is non-blocking and checked again with ``fstat`` (decisions 7h), so
    no file kind can hang the daemon or ``check-config``."""
    st = os.stat(path) if follow else os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("is %s, not a regular file" % _kind(st.st_mode))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | (0 if follow else os.O_NOFOLLOW))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("is %s, not a regular file" % _kind(st.st_mode))
        if st.st_size > limit:
            raise ValueError("is %d bytes, more than the %d this file may have" % (st.st_size, limit))
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError("is more than %d bytes" % limit)
    return data


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def decode_utf8(data: bytes) -> str:
    """Text from UTF-8 bytes; ValueError naming the line of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ValueError("line %d: not UTF-8 (byte 0x%02x); save the file as UTF-8" % (line, data[exc.start]))


def _refuse_aliases(path: str, text: str) -> None:
    """Anchors and aliases have no use in this flat file and are how a few hundred bytes
    of YAML expand into gigabytes (an alias bomb): refuse them before composing."""
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ConfigError(path, ["line %d: YAML anchors and aliases (& and *) are not allowed in this "
                                         "file; write the values out" % (event.start_mark.line + 1)])
    except yaml.YAMLError:
        return  # reported with its line by _read_mapping


def _read_mapping(path: str, text: str) -> Dict[str, Tuple[Any, int]]:
    """Parse YAML with the safe loader, keeping each top-level key's line number."""
    _refuse_aliases(path, text)
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(path, ["line %d: the file must be a mapping of key: value lines"
                                     % (node.start_mark.line + 1)])
        out: Dict[str, Tuple[Any, int]] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(path, ["line %d: a key must be a plain name" % line])
            if not isinstance(value_node, yaml.ScalarNode):
                out[str(key_node.value)[:64]] = (_NotScalar(), line)  # no key of this file takes a list or mapping
                continue
            key = loader.construct_object(key_node, deep=True)
            out[str(key)[:64]] = (loader.construct_object(value_node, deep=True), line)
        return out
    except RecursionError:
        raise ConfigError(path, ["the YAML is nested too deeply; this file is a flat list of key: value lines"])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = "line %d: " % (mark.line + 1)
        elif isinstance(exc, yaml.reader.ReaderError):
            where = "line %d: " % (text[:exc.position].count("\n") + 1)
        else:
            where = ""
        if isinstance(exc, yaml.reader.ReaderError):
            problem = "character U+%04X is not allowed" % exc.character if isinstance(exc.character, int) \
                else "a character is not allowed"
        else:
            problem = str(getattr(exc, "problem", None) or exc).splitlines()[0][:200]
        raise ConfigError(path, [where + "not valid YAML (%s)" % problem])
    finally:
        if loader is not None:
            loader.dispose()


class _NotScalar:
    """A list or mapping where a key needs one value (shown as such in the message)."""

    def __repr__(self) -> str:
        return "a list or mapping"


def load_config(path: str = DEFAULT_CONFIG, environ: Optional[Dict[str, str]] = None,
                check_dirs: bool = True) -> Config:
    """Read and validate ``path``; raise ConfigError listing every problem."""
    try:
        text = decode_utf8(read_regular_file(path, MAX_CONFIG_BYTES))
    except OSError as exc:
        raise ConfigError(path, ["cannot read the configuration file (%s)" % exc.strerror])
    except ValueError as exc:
        raise ConfigError(path, ["the configuration file %s" % exc if not str(exc).startswith("line")
                                 else str(exc)])
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
    if "server_url" in values:
        problem = _check_url(values["server_url"], values.get("allow_insecure_http", False))
        if problem:
            problems.append("line %d: key 'server_url': %s" % (raw["server_url"][1], problem))
    if values.get("ca_bundle") and values.get("verify_tls", True):
        problem = _check_file(values["ca_bundle"])
        if problem:
            problems.append("line %d: key 'ca_bundle': %s" % (raw["ca_bundle"][1], problem))
    if check_dirs:
        work_dir = values.get("work_dir", DEFAULT_WORK_DIR)
        problem = _check_work_dir(work_dir)
        if problem:
            where = "line %d: key 'work_dir'" % raw["work_dir"][1] if "work_dir" in raw else "key 'work_dir' (default)"
            problems.append("%s: %s" % (where, problem))
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
    if key in ("max_memory", "max_download_size"):
        try:
            value = parse_size(value)
        except (ValueError, KeyError, OverflowError):
            raise ValueError("must be bytes or a size such as 4G, not %s" % _short(value))
    if key in BOUNDS:
        low, high = BOUNDS[key]
        if not (isinstance(value, (int, float)) and low <= value <= high):  # NaN fails too
            raise ValueError("must be from %s to %s, not %s" % (_bound(key, low), _bound(key, high), _short(value)))
        return value
    if key == "log_target" and value not in ("auto", "journal", "syslog", "stderr"):
        raise ValueError("must be auto, journal, syslog or stderr, not %r" % value)
    if key == "log_level" and value.lower() not in ("debug", "info", "warning", "error"):
        raise ValueError("must be debug, info, warning or error, not %r" % value)
    if key == "token":
        _check_token_text(value)
    if key == "runner_name":
        if not 0 < len(value) <= RUNNER_NAME_MAX or not value.strip():
            raise ValueError("must be 1 to %d characters (the server's limit), not %d" % (RUNNER_NAME_MAX, len(value)))
        if any(unicodedata.category(c)[0] in "CZ" and c != " " for c in value):
            raise ValueError("must be printable text on one line (no control or separator characters)")
    if key in ("token_file", "work_dir", "ca_bundle") and ("\0" in value or not value.strip()):
        raise ValueError("must be a file path")
    if key in ("token_file", "work_dir") and not os.path.isabs(value):
        raise ValueError("must be an absolute path, not %s" % _short(value))
    if key == "dbus_bus" and len(value) > 1000:
        raise ValueError("is too long for a D-Bus address")
    if key == "server_url":
        return value.rstrip("/")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bound(key: str, value: float) -> str:
    if key in ("max_memory", "max_download_size"):
        for suffix, factor in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20)):
            if value >= factor and value % factor == 0:
                return "%d%s" % (value // factor, suffix)
    return "%g" % value


def _check_token_text(text: str) -> None:
    """A token is one line of printable ASCII (it goes into an HTTP header)."""
    if not text.strip():
        raise ValueError("is empty")
    if len(text) > MAX_TOKEN_BYTES:
        raise ValueError("is longer than %d characters" % MAX_TOKEN_BYTES)
    if any(not 32 < ord(c) < 127 for c in text):
        raise ValueError("must be one line of printable ASCII without spaces (no control characters, "
                         "no second line)")


def _check_file(path: str) -> Optional[str]:
    try:
        st = os.stat(path)
    except OSError as exc:
        return "%s: %s" % (path, exc.strerror)
    if not stat.S_ISREG(st.st_mode):
        return "%s is %s, not a regular file" % (path, _kind(st.st_mode))
    if not os.access(path, os.R_OK):
        return "%s cannot be read by this user" % path
    return None


def _check_work_dir(path: str) -> Optional[str]:
    """The work_dir must be a writable directory (or creatable: its nearest existing
    ancestor is a writable directory)."""
    probe = path
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return "%s is not a directory" % probe
    if not os.access(probe, os.W_OK | os.X_OK):
        return ("%s is not writable by this user (uid %d); create it for the daemon's user, "
                "e.g. 'install -d -o abrunner -g abrunner -m 0750 %s'" % (probe, os.getuid(), path))
    return None


def _check_url(url: str, allow_insecure_http: bool) -> Optional[str]:
    if len(url) > 2000 or any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return "must be a URL without spaces or control characters"
    try:
        parsed = urlparse(url)
        hostname, _port = parsed.hostname, parsed.port
    except ValueError as exc:
        return "is not a valid URL (%s)" % exc
    if parsed.scheme not in ("http", "https") or not hostname:
        return "must be an http(s) URL such as https://jobs.example.org, not %s" % _short(url)
    if parsed.username is not None or parsed.password is not None or "@" in parsed.netloc:
        return "must not carry a user name or password (the token file is for that)"
    if parsed.fragment or url.endswith("#"):
        return "must not have a fragment (#...)"
    if parsed.query:
        return "must not have a query (?...)"
    if parsed.scheme == "http" and not allow_insecure_http and not is_loopback(hostname):
        return ("plain http to %s would send the token unencrypted: use https (plain http is only for a "
                "loopback address such as 127.0.0.1, ::1 or localhost), or set allow_insecure_http: true "
                "if you really mean it" % hostname)
    return None


def is_loopback(host: str) -> bool:
    """A loopback IP literal or ``localhost``; never a name that merely starts with ``127.``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenError(ConfigError):
    """The token file exists but must not be used as it is."""


def load_token(cfg: Config) -> Optional[Secret]:
    """The token, or None when none is configured yet (the daemon then idles).

    The token file must be a regular file (not a FIFO, directory or device: refused
    without opening it), not readable by others than root and the daemon's group, and
    hold one line of printable ASCII.
    """
    if cfg.token is not None:
        return cfg.token
    path = cfg.token_file
    where = "key 'token_file'"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TokenError(cfg.path, ["%s: cannot read %s (%s)" % (where, path, exc.strerror)])
    if not stat.S_ISREG(st.st_mode):
        raise TokenError(cfg.path, ["%s: the token file %s is %s, not a regular file: put the token into a "
                                    "plain file there" % (where, path, _kind(st.st_mode))])
    if st.st_mode & stat.S_IRWXO:
        raise TokenError(cfg.path, [
            "the token file %s can be read by every user (mode %o): run "
            "'chown root:%s %s && chmod 0640 %s'"
            % (path, stat.S_IMODE(st.st_mode), DAEMON_GROUP, path, path)])
    if st.st_mode & stat.S_IRWXG and st.st_gid not in _allowed_gids():
        raise TokenError(cfg.path, [
            "the token file %s is readable by group %s: run 'chown root:%s %s' "
            "(or chmod 0600 it)" % (path, _group_name(st.st_gid), DAEMON_GROUP, path)])
    try:
        data = read_regular_file(path, MAX_TOKEN_BYTES, follow=False)
    except OSError as exc:
        raise TokenError(cfg.path, ["%s: cannot read %s (%s)" % (where, path, exc.strerror)])
    except ValueError as exc:
        raise TokenError(cfg.path, ["%s: the token file %s %s" % (where, path, exc)])
    try:
        text = data.decode("ascii").strip()
        if text:
            _check_token_text(text)
    except (UnicodeDecodeError, ValueError) as exc:
        why = str(exc) if isinstance(exc, ValueError) and not isinstance(exc, UnicodeDecodeError) \
            else "must be printable ASCII"
        raise TokenError(cfg.path, ["%s: the token in %s %s" % (where, path, why)])
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
