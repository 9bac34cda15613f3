"""A thin adapter from docs/protocol.md to Python calls: one method per endpoint.

Every call has a timeout and a User-Agent; every failure becomes one of the
exceptions below, whose messages name the server and the endpoint but never the
token (it lives only in the session's headers, and every message is scrubbed anyway).
No retries here: the runner decides what to retry.
"""
import hashlib
import json
import os
import platform
from typing import Any, Callable, Dict, Iterable, List, Optional
from urllib.parse import urljoin, urlparse

import requests

from abrunnerd import __version__
from abrunnerd.config import Secret

USER_AGENT = "abrunnerd/%s (python %s)" % (__version__, platform.python_version())
MAX_JSON_SIZE = 64 << 20
LOWLEVEL_BATCH = 25  # AcousticBrainz refuses more ids per request
CHUNK = 1 << 16
UPLOAD_READ_TIMEOUT = 300.0


class ClientError(Exception):
    """Base of every failure talking to the server."""

    retryable = False


class TransportError(ClientError):
    """Could not reach the server, or it timed out: retry later."""

    retryable = True


class ApiError(ClientError):
    """The server answered with an error status."""

    def __init__(self, status: int, code: str, message: str, what: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__("%s: HTTP %d %s%s" % (what, status, code, (": " + message) if message else ""))

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


class Client:
    def __init__(self, server_url: str, token: Secret, timeout: float = 30.0,
                 verify: Any = True, max_download_size: int = 4 << 30) -> None:
        self.server_url = server_url.rstrip("/")
        # Accept the server's root or its API root (".../api/v1") in server_url.
        self.api = self.server_url if self.server_url.endswith("/api/v1") else self.server_url + "/api/v1"
        self.timeout = timeout
        self.max_download_size = max_download_size
        self._token = token
        self._session = requests.Session()
        self._session.verify = verify
        self._session.trust_env = False  # no proxies/netrc from the environment; the token goes only here
        self._session.headers.update({"User-Agent": USER_AGENT,
                                      "Authorization": "Token " + token.reveal()})

    def __repr__(self) -> str:
        return "Client(%r)" % self.server_url

    def close(self) -> None:
        self._session.close()

    # -- plumbing ------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        secret = self._token.reveal()
        return text.replace(secret, "***") if secret else text

    def _request(self, method: str, path: str, what: str, ok: Iterable[int] = (200,),
                 **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else self.api + path
        kwargs.setdefault("timeout", self.timeout)
        try:
            resp = self._session.request(method, url, **kwargs)
        except requests.Timeout:
            raise TransportError("%s: %s timed out after %ss" % (what, self.server_url, self.timeout)) from None
        except requests.RequestException as exc:
            raise TransportError(self._scrub("%s: cannot reach %s (%s)"
                                             % (what, self.server_url, type(exc).__name__))) from None
        if resp.status_code not in ok:
            code, message = "", ""
            try:
                body = json.loads(resp.content[:MAX_JSON_SIZE].decode("utf-8"))
                if isinstance(body, dict):
                    code = str(body.get("code") or "")
                    message = str(body.get("message") or body.get("error") or "")
            except ValueError:
                message = resp.reason or ""
            resp.close()
            raise _error_class(resp.status_code)(resp.status_code, code, self._scrub(message[:500]), what)
        return resp

    def _json(self, method: str, path: str, what: str, ok: Iterable[int] = (200,), **kwargs: Any) -> Any:
        resp = self._request(method, path, what, ok, stream=True, **kwargs)
        try:
            data = resp.raw.read(MAX_JSON_SIZE + 1, decode_content=True)
        except requests.RequestException as exc:
            raise TransportError("%s: connection broke (%s)" % (what, type(exc).__name__)) from None
        except Exception as exc:  # urllib3 protocol/decoding errors
            raise TransportError("%s: bad transfer (%s)" % (what, type(exc).__name__)) from None
        finally:
            resp.close()
        if len(data) > MAX_JSON_SIZE:
            raise ApiError(resp.status_code, "too_large", "answer larger than %d bytes" % MAX_JSON_SIZE, what)
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError:
            raise ApiError(resp.status_code, "bad_json", "the answer is not JSON", what) from None

    # -- AcousticBrainz's paths -------------------------------------------------
    def pending_jobs(self) -> List[Dict[str, Any]]:
        body = self._json("GET", "/datasets/evaluation/jobs", "listing pending jobs",
                          params={"status": "pending", "location": "remote"})
        jobs = body.get("jobs") if isinstance(body, dict) else None
        if not isinstance(jobs, list):
            raise ApiError(200, "bad_shape", "no 'jobs' list in the answer", "listing pending jobs")
        return [j for j in jobs if isinstance(j, dict) and isinstance(j.get("job_id"), str)]

    def job_details(self, job_id: str) -> Dict[str, Any]:
        body = self._json("GET", "/datasets/evaluation/jobs/%s" % job_id, "reading job %s" % job_id)
        if not isinstance(body, dict):
            raise ApiError(200, "bad_shape", "job details are not an object", "reading job %s" % job_id)
        return body

    def lowlevel_bulk(self, mbids: List[str]) -> Dict[str, Any]:
        """Documents for up to 25 recordings, AB's bulk form: {mbid: {"0": doc}}."""
        if len(mbids) > LOWLEVEL_BATCH:
            raise ValueError("at most %d ids per request" % LOWLEVEL_BATCH)
        body = self._json("GET", "/low-level", "fetching low-level features",
                          params={"recording_ids": ";".join(mbids)})
        if not isinstance(body, dict):
            raise ApiError(200, "bad_shape", "low-level answer is not an object", "fetching low-level features")
        return body

    # -- the project's own paths -------------------------------------------------
    def whoami(self) -> Dict[str, Any]:
        return self._json("GET", "/whoami", "asking who the token belongs to")

    def claim(self, job_id: str, runner_id: str, runner_name: str, lease_id: Optional[str]) -> Dict[str, Any]:
        return self._json("POST", "/datasets/evaluation/jobs/%s/claim" % job_id, "claiming job %s" % job_id,
                          json={"runner_id": runner_id, "runner_name": runner_name,
                                "runner_version": __version__, "lease_id": lease_id})

    def ping(self, job_id: str, body: Dict[str, Any]) -> Dict[str, Any]:
        return self._json("POST", "/datasets/evaluation/jobs/%s/ping" % job_id, "pinging job %s" % job_id,
                          json=dict(body, runner_version=__version__))

    def fail(self, job_id: str, lease_id: Optional[str], reason: str) -> None:
        self._json("POST", "/datasets/evaluation/jobs/%s/fail" % job_id, "reporting job %s failed" % job_id,
                   json={"lease_id": lease_id, "reason": reason[:2000]})

    def cancel(self, job_id: str) -> None:
        self._json("POST", "/datasets/evaluation/jobs/%s/cancel" % job_id, "canceling job %s" % job_id)

    def upload_result(self, job_id: str, lease_id: Optional[str], result: Dict[str, Any],
                      model: bytes) -> int:
        """PUT the result and model; returns 201 (stored) or 200 (already stored)."""
        files = {
            "lease_id": (None, lease_id or "", "text/plain"),
            "result": ("result.json", json.dumps(result).encode("utf-8"), "application/json"),
            "model": ("model.history", model, "application/octet-stream"),
        }
        # The server validates and spot-checks (recomputes cells) before it answers: give it time.
        resp = self._request("PUT", "/datasets/evaluation/jobs/%s/result" % job_id,
                             "uploading the result of job %s" % job_id, ok=(200, 201), files=files,
                             timeout=(self.timeout, max(self.timeout, UPLOAD_READ_TIMEOUT)))
        resp.close()
        return resp.status_code

    def download(self, url: str, dest: str, sha256: Optional[str], size: Optional[int],
                 on_chunk: Optional[Callable[[int], None]] = None) -> None:
        """Download ``url`` to ``dest`` through ``dest + '.part'``, resuming with Range,
        checking the announced size and SHA-256 before the final rename."""
        url = urljoin(self.api + "/", url) if not urlparse(url).scheme else url
        if urlparse(url).netloc != urlparse(self.server_url).netloc:
            raise IntegrityError("refusing to send the token to another host (%s)" % urlparse(url).netloc)
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
        if size is None or have < size:
            resp = self._request("GET", url, what, ok=(200, 206), headers=headers, stream=True)
            try:
                mode = "ab" if resp.status_code == 206 and have else "wb"
                if mode == "wb":
                    have = 0
                limit = size if size is not None else self.max_download_size
                with open(part, mode) as f:
                    for chunk in resp.iter_content(CHUNK):
                        have += len(chunk)
                        if have > limit:
                            raise IntegrityError("%s: more than the announced %d bytes" % (what, limit))
                        f.write(chunk)
                        if on_chunk:
                            on_chunk(have)
                    f.flush()
                    os.fsync(f.fileno())
            except requests.RequestException as exc:
                raise TransportError("%s: connection broke after %d bytes (%s)"
                                     % (what, have, type(exc).__name__)) from None
            finally:
                resp.close()
        if size is not None and have != size:
            raise TransportError("%s: got %d of %d bytes; will resume" % (what, have, size))
        if sha256:
            digest = _sha256_file(part)
            if digest != sha256.lower():
                os.unlink(part)  # corrupt: start over next time
                raise IntegrityError("%s: SHA-256 mismatch (got %s…, expected %s…); discarded"
                                     % (what, digest[:12], sha256[:12]))
        os.replace(part, dest)


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
