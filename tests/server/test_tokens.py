"""Issue 17, step 7: tokens are rotated and revoked (CLI and API), users disabled; a dead token
answers 401 on the very next request, in every worker; user names are unambiguous."""
import pytest
import requests
from helpers.server import ServerProcess


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("tokens")) as server:  # gunicorn, 2 workers
        yield server


def _whoami(srv, token):
    return requests.get(srv.url("/whoami"), headers=srv.auth(token), timeout=30)


def _everywhere(srv, token, status):
    """Several requests, so both gunicorn workers answer at least once with high probability."""
    got = {_whoami(srv, token).status_code for _ in range(12)}
    assert got == {status}, got


def test_api_rotation_kills_the_old_token_at_once(srv):
    old = srv.add_user("rota")
    _everywhere(srv, old, 200)
    r = requests.post(srv.url("/token/rotate"), headers=srv.auth(old))
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    new = r.json()["token"]
    _everywhere(srv, old, 401)
    _everywhere(srv, new, 200)
    r = requests.delete(srv.url("/token"), headers=srv.auth(new))
    assert r.status_code == 200 and r.json()["revoked"] is True
    _everywhere(srv, new, 401)
    assert _whoami(srv, new).json()["code"] == "bad_token"


def test_admin_rotates_revokes_and_disables(srv):
    token = srv.add_user("admin-made")
    _everywhere(srv, token, 200)
    srv.admin("revoke-token", "admin-made")
    _everywhere(srv, token, 401)
    token = srv.admin("rotate-token", "admin-made").stdout.strip()
    _everywhere(srv, token, 200)
    srv.admin("disable-user", "admin-made")
    _everywhere(srv, token, 401)
    assert _whoami(srv, token).json()["code"] == "user_disabled"
    assert "disabled" in srv.admin("users").stdout
    srv.admin("disable-user", "admin-made", "--enable")
    _everywhere(srv, token, 200)


@pytest.mark.parametrize("name", ["Alice", "аlice", "ａlice", "al ice", ".lead", "x" * 65, "a\x1b[2J", ""])
def test_ambiguous_user_names_are_refused(srv, name):
    done = srv.admin("add-user", name, check=False)
    assert done.returncode == 65 and "lower-case ASCII" in done.stderr and "Traceback" not in done.stderr
    assert "\x1b" not in done.stderr
