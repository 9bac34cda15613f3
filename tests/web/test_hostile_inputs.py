"""Generated hostile inputs for every input of the pages: form fields, the token, path ids, ``next``.

In-process (Flask's test client on the real app and a real SQLite database) so hypothesis
can try hundreds of inputs quickly. Whatever arrives, the answer is a page (never a 5xx
or a traceback), and a refused form queues nothing.
"""
import re

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abserver import migrations
from abserver.app import create_app
from abserver.datasets import import_dataset_dir
from abserver.db import make_engine
from abserver.users import add_user, user_id_by_name
from helpers.server import EXAMPLE_DATASET

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
HOSTILE = st.one_of(TEXT, st.sampled_from(["", " ", "-0", "1e3", "9" * 40, "1,,2", "−5 −3", "0x10", "NaN", "../..",
                                           "%00", "\x00", "<script>alert(1)</script>", "' OR 1=1 --"]))
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                            HealthCheck.too_slow])


@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    url = "sqlite:///%s" % (tmp_path_factory.mktemp("hostile") / "h.db")
    engine = make_engine(url)
    migrations.upgrade(engine)
    token = add_user(engine, "eve")
    with engine.connect() as conn:
        uid = user_id_by_name(conn, "eve")
    dataset = import_dataset_dir(engine, str(EXAMPLE_DATASET), uid).dataset_id
    app = create_app(url)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"token": token, "csrf_token": csrf}).status_code == 303
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/jobs").get_data(as_text=True)).group(1)
    return client, engine, dataset, csrf


def _jobs(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT COUNT(*) FROM jobs")).scalar()


def _is_page(r):
    assert r.status_code < 500, r.get_data(as_text=True)[:500]
    if r.status_code not in (302, 303):
        assert r.mimetype == "text/html"


@SETTINGS
@given(c=HOSTILE, gamma=HOSTILE, pre=st.lists(HOSTILE, max_size=7), seed=HOSTILE, location=HOSTILE,
       flags=st.lists(st.sampled_from(["artist_filter", "normalize"]), unique=True), flag_value=HOSTILE)
def test_submit_form_takes_anything_without_error(app_env, c, gamma, pre, seed, location, flags, flag_value):
    client, engine, dataset, csrf = app_env
    before = _jobs(engine)
    data = {"csrf_token": csrf, "c_values": c, "gamma_values": gamma, "preprocessing": pre, "seed": seed,
            "location": location}
    data.update({f: flag_value for f in flags})
    r = client.post("/datasets/%s/submit" % dataset, data=data)
    _is_page(r)
    if r.status_code == 303:
        assert _jobs(engine) == before + 1 and re.match(r"^/jobs/[0-9a-f-]{36}$", r.headers["Location"])
    else:
        assert r.status_code == 400 and _jobs(engine) == before, "a refused form queues nothing"
        assert 'role="alert"' in r.get_data(as_text=True), "one clear line says what is wrong"


@SETTINGS
@given(token=st.one_of(HOSTILE, st.text("0123456789abcdef<>&\"'", min_size=12, max_size=80)), nxt=HOSTILE)
def test_sign_in_takes_any_token_and_next(app_env, token, nxt):
    client, engine, dataset, _ = app_env
    anon = client.application.test_client()
    page = anon.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    with engine.begin() as conn:  # keep the rate limit out of this test's way
        conn.execute(sa.text("DELETE FROM web_login_failures"))
    r = anon.post("/login", data={"token": token, "csrf_token": csrf, "next": nxt})
    _is_page(r)
    assert r.status_code == 401
    if len(token.strip()) >= 12 and token not in nxt:  # (short strings occur in any page; next is echoed)
        assert token not in r.get_data(as_text=True), "the refused token is not echoed"


@settings(SETTINGS, max_examples=50)
@given(segment=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"), min_size=1,
                       max_size=80),
       template=st.sampled_from(["/jobs/%s", "/jobs/%s/live", "/jobs/%s/result", "/jobs/%s/plots/confusion.svg",
                                 "/jobs/%s/files/result.json", "/datasets/%s", "/datasets/%s/submit"]))
def test_path_ids_of_any_shape_are_404(app_env, segment, template):
    client, _engine, _dataset, _csrf = app_env
    r = client.get(template % segment)
    assert r.status_code in (404, 308), (template % segment, r.status_code)


ANY_CHAR = st.text(st.characters(blacklist_categories=()), min_size=1, max_size=60).filter(lambda t: t.strip())


@settings(SETTINGS, max_examples=40)
@given(name=ANY_CHAR, description=st.text(st.characters(blacklist_categories=()), max_size=200),
       classes=st.lists(ANY_CHAR, min_size=2, max_size=4, unique=True))
def test_dataset_names_of_any_characters_render_as_valid_pages(app_env, name, description, classes):
    """Names reach the pages from other people's files: controls, bidi overrides and lone
    surrogates are shown escaped, and the page is still valid UTF-8."""
    from abserver.datasets import create_dataset, normalize_dataset

    client, engine, _dataset, _csrf = app_env
    with engine.connect() as conn:
        uid = user_id_by_name(conn, "eve")
    data = normalize_dataset({"name": name, "description": description,
                              "classes": [{"name": c, "recordings": []} for c in classes]})
    with engine.begin() as conn:
        dataset = create_dataset(conn, uid, data)
    for path in ("/datasets", "/datasets/%s" % dataset, "/datasets/%s/submit" % dataset):
        r = client.get(path)
        assert r.status_code == 200, path
        text = r.data.decode("utf-8")  # strict: a lone surrogate could not have been encoded
        assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e]", text), path
