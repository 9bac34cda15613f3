"""A thin adapter from docs/protocol.md to Python calls: one method per endpoint.

Every call has a User-Agent and bounds: a per-read timeout, an overall deadline for the
whole exchange (connect, headers, body), a body size limit, a JSON nesting limit, no
redirects followed and no compression accepted (so a small answer cannot inflate). The
exchange runs in a helper thread while the caller's thread waits for it, checking the
daemon's stop flag, so SIGTERM is obeyed within a fraction of a second even while a
server trickles bytes. Every failure becomes one of the exceptions below, whose
messages name the server and the endpoint but never the token (it lives only in the
session's headers, and every message is scrubbed anyway). Answers are parsed into
checked values by ``answers``. No retries here: the runner decides what to retry.
"""
import email.utils
import hashlib
import json
import os
import platform
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import urljoin, urlparse

import requests

from abrunnerd import __version__
from abrunnerd import answers
from abrunnerd.config import Secret
from abrunnerd.ids import BadId, canonical_uuid

USER_AGENT = "abrunnerd/%s (python %s)" % (__version__, platform.python_version())
MAX_JSON_SIZE = 16 << 20  # the largest answer (25 low-level documents, a 10k-recording job) is a few MB
MAX_JSON_DEPTH = 64  # Essentia documents nest about 5 deep
MAX_ERROR_BODY = 64 << 10
LOWLEVEL_BATCH = 25  # AcousticBrainz refuses more ids per request
CHUNK = 1 << 16
UPLOAD_READ_TIMEOUT = 300.0
MIN_DOWNLOAD_RATE = 64 << 10  # bytes/s a features download may not fall below on average (it resumes)
RETRY_AFTER_RANGE = (0.0, 3600.0)
WAIT_STEP = 0.1  # how often a waiting caller looks at the stop flag


class ClientError(Exception):
    """Base of every failure talking to the server."""

    retryable = False
    retry_after = None  # type: Optional[float]


class TransportError(ClientError):
    """Could not reach the server, or it timed out: retry later."""

    retryable = True


class Interrupted(ClientError):
    """The daemon is stopping: the exchange was abandoned (its thread ends by itself)."""


class RedirectError(ClientError):
    """A 3xx: API calls never follow redirects (decisions 7a); the message says where to."""

    def __init__(self, status: int, location: str, what: str, suggestion: str) -> None:
        self.status, self.location = status, location
        super().__init__("%s: the server redirects (HTTP %d) to %s%s" % (
            what, status, location or "(no Location)",
            ": set server_url to %s" % suggestion if suggestion else ""))


class BadAnswerError(ClientError):
    """A 2xx answer whose content does not have the protocol's shape."""

    def __init__(self, what: str, problem: str) -> None:
        self.problem = problem
        super().__init__("%s: malformed answer: %s" % (what, problem))


class ApiError(ClientError):
    """The server answered with an error status."""

    def __init__(self, status: int, code: str, message: str, what: str,
                 retry_after: Optional[float] = None) -> None:
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after
        super().__init__("%s: HTTP %d%s%s" % (what, status, " " + code if code else "",
                                               (": " + message) if message else ""))

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status >= 500 or self.status in (408, 429)


class AuthError(ApiError):
    """401/403: the token is missing, unknown or not allowed."""


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class IntegrityError(ClientError):
    """A download did not match its announced size or SHA-256."""

    retryable = True


def _error_class(status: int) -> type:
    return {401: AuthError, 403: AuthError, 404: NotFound, 405: NotFound, 409: Conflict}.get(status, ApiError)


def retry_after(headers: Any, now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP-date) or AcousticBrainz's
    ``X-RateLimit-Reset-In``, clamped to RETRY_AFTER_RANGE; None when neither is usable."""
    for name in ("Retry-After", "X-RateLimit-Reset-In"):
        value = (headers.get(name) or "").strip()[:64]
        if not value:
            continue
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                seconds = when.timestamp() - (time.time() if now is None else now)
            except (TypeError, ValueError, IndexError, OverflowError):
                continue
        if seconds == seconds:  # not NaN
            return answers.clamp_number(seconds, RETRY_AFTER_RANGE)
    return None


_SOCKETS = {}  # type: Dict[int, List[Any]]  # helper thread ident -> sockets it opened
_SOCKETS_LOCK = threading.Lock()


def _track(sock: Any) -> None:
    with _SOCKETS_LOCK:
        _SOCKETS.setdefault(threading.get_ident(), []).append(sock)


def _release(ident: int, shut: bool) -> None:
    """Forget the sockets of a helper thread; ``shut``: also shut them down, which ends
    any read the thread is blocked in (a server trickling headers would hold it forever)."""
    with _SOCKETS_LOCK:
        socks = _SOCKETS.pop(ident, [])
    for sock in socks if shut else ():
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass


class _TrackingAdapter(requests.adapters.HTTPAdapter):
    """Connection pools whose connections register their socket with the helper thread
    that opened them, so an abandoned exchange can be cut off (see ``_release``)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        try:
            from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

            def tracked(pool_cls: Any) -> Any:
                class Connection(pool_cls.ConnectionCls):  # type: ignore
                    def connect(self) -> None:
                        super().connect()
                        _track(self.sock)

                return type("Tracking" + pool_cls.__name__, (pool_cls,), {"ConnectionCls": Connection})

            self.poolmanager.pool_classes_by_scheme = {"http": tracked(HTTPConnectionPool),
                                                       "https": tracked(HTTPSConnectionPool)}
        except Exception:  # an urllib3 without these hooks: abandoned threads end at their read timeout
            pass


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def parse_json(data: bytes, what: str, status: int = 200) -> Any:
    """Bytes to JSON with the nesting limit; BadAnswerError saying what is wrong."""
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise BadAnswerError(what, "JSON nested more than %d deep" % MAX_JSON_DEPTH) from None
    except ValueError:
        raise BadAnswerError(what, "the answer is not JSON (HTTP %d)" % status) from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise BadAnswerError(what, "JSON nested more than %d deep" % MAX_JSON_DEPTH)
    return value


class Client:
    def __init__(self, server_url: str, token: Secret, timeout: float = 30.0,
                 verify: Any = True, max_download_size: int = 4 << 30,
                 should_stop: Optional[Callable[[], bool]] = None) -> None:
        self.server_url = server_url.rstrip("/")
        # Accept the server's root or its API root (".../api/v1") in server_url.
        self.api = self.server_url if self.server_url.endswith("/api/v1") else self.server_url + "/api/v1"
        self.timeout = timeout
        self.max_download_size = max_download_size
        self.should_stop = should_stop or (lambda: False)
        self._token = token
        self._session = requests.Session()
        self._session.verify = verify
        self._session.trust_env = False  # no proxies/netrc from the environment; the token goes only here
        # One connection per exchange (Connection: close), so every socket belongs to the
        # helper thread that opened it and can be cut off when that exchange is abandoned.
        self._session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                                      "Connection": "close", "Authorization": "Token " + token.reveal()})
        adapter = _TrackingAdapter(max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __repr__(self) -> str:
        return "Client(%r)" % self.server_url

    def close(self) -> None:
        self._session.close()

    # -- plumbing ------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        secret = self._token.reveal()
        return text.replace(secret, "***") if secret else text

    def _exchange(self, what: str, deadline: float, work: Callable[[threading.Event], Any],
                  while_waiting: Optional[Callable[[], None]] = None) -> Any:
        """Run ``work`` (one whole HTTP exchange) in a helper thread; wait for it at most
        ``deadline`` seconds and only while the daemon is not stopping. An abandoned
        exchange is told to give up (the Event) and ends at its next read or timeout."""
        box = {}  # type: Dict[str, Any]
        abandon = threading.Event()

        def target() -> None:
            try:
                box["value"] = work(abandon)
            except BaseException as exc:  # handed to the waiting thread
                box["error"] = exc
            finally:
                _release(threading.get_ident(), shut=False)

        thread = threading.Thread(target=target, name="abrunnerd-http", daemon=True)
        thread.start()
        end = time.monotonic() + deadline
        try:
            while thread.is_alive():
                if self.should_stop():
                    raise Interrupted("%s: abandoned, the daemon is stopping" % what)
                left = end - time.monotonic()
                if left <= 0:
                    raise TransportError("%s: %s did not complete the exchange within %.0f s"
                                         % (what, self.server_url, deadline))
                thread.join(min(WAIT_STEP, left))
                if while_waiting is not None and thread.is_alive():
                    while_waiting()
        finally:
            if thread.is_alive():
                abandon.set()
                _release(thread.ident or 0, shut=True)
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def _send(self, method: str, path: str, what: str, ok: Iterable[int] = (200,),
              **kwargs: Any) -> requests.Response:
        """One request, headers read; runs inside ``_exchange``'s thread."""
        url = path if path.startswith("http") else self.api + path
        kwargs.setdefault("timeout", self.timeout)
        try:
            resp = self._session.request(method, url, allow_redirects=False, stream=True, **kwargs)
        except requests.Timeout:
            raise TransportError("%s: %s timed out after %ss" % (what, self.server_url, self.timeout)) from None
        except requests.RequestException as exc:
            raise TransportError(self._scrub("%s: cannot reach %s (%s)"
                                             % (what, self.server_url, type(exc).__name__))) from None
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            resp.close()
            raise BadAnswerError(what, "the answer is compressed (%s) though the runner asked for none"
                                 % encoding[:20])
        if 300 <= resp.status_code < 400:
            location = resp.headers.get("Location", "")[:500]
            resp.close()
            raise RedirectError(resp.status_code, self._scrub(location), what,
                                self._suggest(urljoin(url, location), url) if location else "")
        if resp.status_code not in ok:
            code, message = "", ""
            try:
                body = json.loads(_read_limited(resp, MAX_ERROR_BODY, what, None).decode("utf-8"))
                if isinstance(body, dict):
                    code = answers.text(body.get("code"), 64)
                    message = answers.text(body.get("message") or body.get("error"), 500)
            except (ValueError, RecursionError, ClientError):
                message = answers.text(resp.reason, 100)
            finally:
                resp.close()
            raise _error_class(resp.status_code)(resp.status_code, code, self._scrub(message), what,
                                                 retry_after(resp.headers) if resp.status_code in (429, 503)
                                                 else None)
        return resp

    def _suggest(self, target: str, asked: str) -> str:
        """The server_url a redirect suggests: the target minus the part of the path we asked for."""
        parsed, mine = urlparse(target), urlparse(asked)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            return ""
        root = urlparse(self.server_url).path.rstrip("/")
        rel = mine.path[len(root):] if mine.path.startswith(root) else mine.path
        path = parsed.path[:-len(rel)] if rel and parsed.path.endswith(rel) else parsed.path
        return "%s://%s%s" % (parsed.scheme, parsed.netloc.rsplit("@", 1)[-1], path.rstrip("/"))

    def _request(self, method: str, path: str, what: str, ok: Iterable[int] = (200,),
                 deadline: Optional[float] = None, **kwargs: Any) -> int:
        """A request whose answer body is not needed; returns the status."""
        def work(abandon: threading.Event) -> int:
            resp = self._send(method, path, what, ok, **kwargs)
            resp.close()
            return resp.status_code
        return self._exchange(what, deadline or self.timeout, work)

    def _json(self, method: str, path: str, what: str, ok: Iterable[int] = (200,), **kwargs: Any) -> Any:
        def work(abandon: threading.Event) -> Tuple[int, bytes]:
            resp = self._send(method, path, what, ok, **kwargs)
            try:
                return resp.status_code, _read_limited(resp, MAX_JSON_SIZE, what, abandon)
            finally:
                resp.close()
        status, data = self._exchange(what, self.timeout, work)
        return parse_json(data, what, status)

    # -- AcousticBrainz's paths -------------------------------------------------
    def pending_jobs(self) -> List[answers.JobEntry]:
        """Pending jobs with well-formed ids; ``self.left_out`` has a line per entry left out."""
        what = "listing pending jobs"
        body = self._json("GET", "/datasets/evaluation/jobs", what,
                          params={"status": "pending", "location": "remote"})
        try:
            entries, self.left_out = answers.parse_job_list(body)
        except answers.BadAnswer as exc:
            raise BadAnswerError(what, str(exc)) from None
        return entries

    left_out = []  # type: List[str]

    def job_details(self, job_id: str) -> Dict[str, Any]:
        """Checked job details (``answers.parse_details``)."""
        job_id = _id(job_id)
        what = "reading job %s" % job_id
        body = self._json("GET", "/datasets/evaluation/jobs/%s" % job_id, what)
        try:
            return answers.parse_details(job_id, body)
        except answers.BadAnswer as exc:
            raise BadAnswerError(what, str(exc)) from None

    def lowlevel_bulk(self, mbids: List[str]) -> Dict[str, Any]:
        """Documents for up to 25 recordings, AB's bulk form: {mbid: {"0": doc}}."""
        if len(mbids) > LOWLEVEL_BATCH:
            raise ValueError("at most %d ids per request" % LOWLEVEL_BATCH)
        what = "fetching low-level features"
        body = self._json("GET", "/low-level", what, params={"recording_ids": ";".join(_id(m) for m in mbids)})
        if not isinstance(body, dict):
            raise BadAnswerError(what, "the low-level answer is not an object")
        return body

    # -- the project's own paths -------------------------------------------------
    def whoami(self) -> Dict[str, Any]:
        what = "asking who the token belongs to"
        body = self._json("GET", "/whoami", what)
        if not isinstance(body, dict):
            raise BadAnswerError(what, "the answer is not an object")
        return {k: answers.text(body.get(k), 200) if not isinstance(body.get(k), int) else body.get(k)
                for k in ("username", "api_version", "server_version")}

    def claim(self, job_id: str, runner_id: str, runner_name: str, lease_id: Optional[str]) -> answers.Lease:
        job_id = _id(job_id)
        what = "claiming job %s" % job_id
        body = self._json("POST", "/datasets/evaluation/jobs/%s/claim" % job_id, what,
                          json={"runner_id": runner_id, "runner_name": runner_name,
                                "runner_version": __version__, "lease_id": lease_id})
        try:
            return answers.parse_lease(body, self.max_download_size)
        except answers.BadAnswer as exc:
            # The lease id (when the answer has a usable one) lets the runner report the failure.
            lease = body.get("lease_id") if isinstance(body, dict) else None
            err = BadAnswerError(what, str(exc))
            err.lease_id = lease if isinstance(lease, str) and len(lease) <= 200 else None  # type: ignore
            raise err from None

    def ping(self, job_id: str, body: Dict[str, Any]) -> answers.PingAnswer:
        job_id = _id(job_id)
        return answers.parse_ping_answer(self._json(
            "POST", "/datasets/evaluation/jobs/%s/ping" % job_id, "pinging job %s" % job_id,
            json=dict(body, runner_version=__version__)))

    def fail(self, job_id: str, lease_id: Optional[str], reason: str) -> None:
        job_id = _id(job_id)
        # Only the status matters: the answer's body is not read (nothing in it to trust).
        self._request("POST", "/datasets/evaluation/jobs/%s/fail" % job_id, "reporting job %s failed" % job_id,
                      json={"lease_id": lease_id, "reason": reason[:2000]})

    def cancel(self, job_id: str) -> None:
        job_id = _id(job_id)
        self._request("POST", "/datasets/evaluation/jobs/%s/cancel" % job_id, "canceling job %s" % job_id)

    def upload_result(self, job_id: str, lease_id: Optional[str], result: Dict[str, Any],
                      model: bytes) -> int:
        """PUT the result and model; returns 201 (stored) or 200 (already stored)."""
        job_id = _id(job_id)
        files = {
            "lease_id": (None, lease_id or "", "text/plain"),
            "result": ("result.json", json.dumps(result).encode("utf-8"), "application/json"),
            "model": ("model.history", model, "application/octet-stream"),
        }
        # The server validates and spot-checks (recomputes cells) before it answers: give it time.
        read = max(self.timeout, UPLOAD_READ_TIMEOUT)
        return self._request("PUT", "/datasets/evaluation/jobs/%s/result" % job_id,
                             "uploading the result of job %s" % job_id, ok=(200, 201), files=files,
                             timeout=(self.timeout, read), deadline=self.timeout + read)

    def download(self, url: str, dest: str, sha256: Optional[str], size: Optional[int],
                 on_chunk: Optional[Callable[[int], None]] = None) -> None:
        """Download ``url`` to ``dest`` through ``dest + '.part'``, resuming with Range,
        checking the announced size and SHA-256 before the final rename.

        ``on_chunk(bytes_so_far)`` is called from the caller's thread while it waits. The
        exchange's deadline is ``request_timeout`` plus the time the rest takes at
        MIN_DOWNLOAD_RATE; an interrupted download resumes next time."""
        url = urljoin(self.api + "/", url) if not urlparse(url).scheme else url
        if urlparse(url).netloc != urlparse(self.server_url).netloc:
            raise IntegrityError("refusing to send the token to another host (%s)" % urlparse(url).netloc[:100])
        if size is not None and size > self.max_download_size:
            raise IntegrityError("the features bundle is %d bytes, more than max_download_size (%d)"
                                 % (size, self.max_download_size))
        part = dest + ".part"
        have = os.path.getsize(part) if os.path.exists(part) else 0
        if size is not None and have > size:
            os.unlink(part)
            have = 0
        what = "downloading features"
        headers = {"Range": "bytes=%d-" % have} if have else {}
        progress = {"have": have}
        limit = size if size is not None else self.max_download_size

        def work(abandon: threading.Event) -> int:
            resp = self._send("GET", url, what, ok=(200, 206), headers=headers)
            got = have if resp.status_code == 206 and have else 0
            try:
                with open(part, "ab" if got else "wb") as f:
                    while not abandon.is_set():
                        chunk = resp.raw.read(CHUNK, decode_content=False)
                        if not chunk:
                            break
                        got += len(chunk)
                        if got > limit:
                            raise IntegrityError("%s: more than the announced %d bytes" % (what, limit))
                        f.write(chunk)
                        progress["have"] = got
                    f.flush()
                    os.fsync(f.fileno())
            except (requests.RequestException, ConnectionError) as exc:
                raise TransportError("%s: connection broke after %d bytes (%s)"
                                     % (what, got, type(exc).__name__)) from None
            except Exception as exc:
                if isinstance(exc, (ClientError, OSError)):
                    raise
                raise TransportError("%s: bad transfer after %d bytes (%s)"
                                     % (what, got, type(exc).__name__)) from None
            finally:
                resp.close()
            return got

        if size is None or have < size:
            deadline = self.timeout + (limit - have) / float(MIN_DOWNLOAD_RATE)
            have = self._exchange(what, deadline, work, while_waiting=(
                (lambda: on_chunk(progress["have"])) if on_chunk else None))
        if size is not None and have != size:
            raise TransportError("%s: got %d of %d bytes; will resume" % (what, have, size))
        if sha256:
            digest = _sha256_file(part)
            if digest != sha256.lower():
                os.unlink(part)  # corrupt: start over next time
                raise IntegrityError("%s: SHA-256 mismatch (got %s…, expected %s…); discarded"
                                     % (what, digest[:12], sha256[:12]))
        os.replace(part, dest)


def _id(value: str) -> str:
    """Ids go into URL paths: only canonical UUIDs (the runner parsed them already)."""
    try:
        return canonical_uuid(value)
    except BadId as exc:
        raise BadAnswerError("building a request", str(exc)) from None


def _read_limited(resp: requests.Response, limit: int, what: str,
                  abandon: Optional[threading.Event]) -> bytes:
    """The whole body (raw: compression was refused), at most ``limit`` bytes."""
    chunks, n = [], 0
    try:
        while abandon is None or not abandon.is_set():
            chunk = resp.raw.read(CHUNK, decode_content=False)
            if not chunk:
                break
            n += len(chunk)
            if n > limit:
                raise BadAnswerError(what, "answer larger than %d bytes" % limit)
            chunks.append(chunk)
    except ClientError:
        raise
    except Exception as exc:  # requests/urllib3 read, protocol and timeout errors
        raise TransportError("%s: connection broke (%s)" % (what, type(exc).__name__)) from None
    return b"".join(chunks)


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
