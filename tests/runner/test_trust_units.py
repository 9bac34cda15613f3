"""Units of the runner's trust boundary: ids, answers, sinks, the work_dir guard,
Retry-After, JSON depth, the loopback rule (docs/runner.md, "Threat model")."""
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abrunnerd import answers, sinks
from abrunnerd.client import json_depth, retry_after
from abrunnerd.config import is_loopback
from abrunnerd.ids import BadId, canonical_uuid
from abrunnerd.state import PathEscape, StateStore, inside_work_dir

U = "0F8B3B5E-6A1D-4C2E-9F3A-1B2C3D4E5F60"


def test_ids_are_canonicalised_or_refused():
    assert canonical_uuid(U) == U.lower()
    for bad in ("../../victim", "/abs", U.replace("-", ""), "{%s}" % U, "urn:uuid:" + U, U + "\n", 5, None, ""):
        with pytest.raises(BadId):
            canonical_uuid(bad)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.integers(), st.none()))
def test_anything_accepted_as_an_id_is_a_plain_file_name(value):
    try:
        out = canonical_uuid(value)
    except BadId as exc:
        assert len(str(exc)) < 200 and "\n" not in str(exc)
        return
    assert len(out) == 36 and set(out) <= set("0123456789abcdef-")


@pytest.mark.parametrize("value,expected", [(-5, 1.0), (float("nan"), None), (1e-9, 1.0), (1e9, 3600.0),
                                            (30, 30.0), ("30", None), (True, None), (float("inf"), 3600.0)])
def test_ping_interval_is_clamped(value, expected):
    assert answers.parse_ping_answer({"ping_interval": value}).ping_interval == expected
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        body = {"lease_id": "l", "ping_interval": value}
        assert answers.parse_lease(body, 1 << 30).ping_interval == expected


def test_only_cancel_true_cancels():
    assert not answers.parse_ping_answer({"cancel": "yes"}).cancel
    assert not answers.parse_ping_answer([1]).cancel
    assert answers.parse_ping_answer({"cancel": True}).cancel


@pytest.mark.parametrize("body,fragment", [
    ({"features_size": "12"}, "'features_size'"), ({"features_sha256": 12}, "'features_sha256'"),
    ({"features_size": 1 << 40}, "max_download_size"), ({"seed": -1}, "'seed'"), ({"lease_id": ["x"]}, "'lease_id'"),
])
def test_wrongly_typed_claim_fields_are_named(body, fragment):
    with pytest.raises(answers.BadAnswer) as info:
        answers.parse_lease(body, 4 << 30)
    assert fragment in str(info.value)


def _details(**over):
    body = {"dataset_id": U, "seed": 1, "options": {}, "dataset": {"name": "d", "classes": [
        {"name": "a", "recordings": [U]}, {"name": "b", "recordings": [U.lower()]}]}}
    body.update(over)
    return body


def test_details_are_canonicalised():
    d = answers.parse_details(U.lower(), _details())
    assert d["dataset_id"] == U.lower() and d["dataset"]["classes"][0]["recordings"] == [U.lower()]


@pytest.mark.parametrize("over,fragment", [
    ({"dataset": [1]}, "'dataset' is list"),
    ({"dataset": {"classes": [{"name": "a", "recordings": ["../../x"]}]}}, "is not a UUID"),
    ({"dataset_id": "/etc"}, "dataset_id"), ({"seed": "1"}, "'seed'"),
    ({"options": {"c_values": [1e9]}}, "options.c_values"), ({"options": {"evil": 1}}, "unknown job option"),
])
def test_bad_details_name_the_field(over, fragment):
    with pytest.raises(answers.BadAnswer) as info:
        answers.parse_details(U.lower(), _details(**over))
    assert fragment in str(info.value)


def test_job_list_leaves_out_bad_ids_with_a_reason():
    entries, problems = answers.parse_job_list({"jobs": [{"job_id": "../x"}, {"job_id": U}, 5]})
    assert [e.job_id for e in entries] == [U.lower()]
    assert len(problems) == 2 and "not a UUID" in problems[0]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_sinks_never_pass_line_breaks_or_escapes(text):
    for fn in (sinks.log_text, sinks.journal_field, sinks.notify_status, sinks.dbus_string, sinks.terminal):
        out = fn(text)
        assert not any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 or c in "\u2028\u2029\u202e" for c in out), (fn, out)
        assert "\x00" not in out
        out.encode("utf-8")  # no lone surrogates: D-Bus and the journal need valid UTF-8
    name = sinks.file_name(text)
    assert name and "/" not in name and not name.startswith(".")


def test_notify_status_cannot_forge_an_assignment():
    assert "\n" not in sinks.notify_status("x\nREADY=1")
    assert sinks.terminal("\x1b]0;title\x07ok") == "\\x1b]0;title\\x07ok"


def test_work_dir_guard_follows_symlinks(tmp_path):
    work = tmp_path / "work"
    (work / "jobs").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(str(tmp_path / "outside"), str(work / "jobs" / "link"))
    assert inside_work_dir(str(work), str(work / "jobs" / "x")) == str(work / "jobs" / "x")
    for bad in (str(work / ".." / "outside"), str(work / "jobs" / "link" / "f"), "/etc/passwd", str(work)):
        with pytest.raises(PathEscape):
            inside_work_dir(str(work), bad)


def test_corrupt_state_is_quarantined(tmp_path):
    store = StateStore(str(tmp_path))
    store.ensure_dirs()
    job = U.lower()
    store.save(job, {"job_id": job, "worker_pgid": 1})
    with pytest.raises(ValueError):
        store.load_checked(job)
    dest = store.quarantine(job, "test")
    assert os.path.isdir(dest) and not os.path.exists(store.files(job).dir)
    os.makedirs(str(tmp_path / "jobs" / "..evil"))
    assert store.held_jobs() == [] and not os.path.exists(str(tmp_path / "jobs" / "..evil"))


@pytest.mark.parametrize("headers,expected", [
    ({"Retry-After": "20"}, 20.0), ({"X-RateLimit-Reset-In": "7"}, 7.0), ({"Retry-After": "-1"}, 0.0),
    ({"Retry-After": "NaN"}, None), ({"Retry-After": "1e999"}, 3600.0), ({"Retry-After": "soon"}, None), ({}, None),
])
def test_retry_after(headers, expected):
    assert retry_after(headers) == expected


def test_json_depth_is_iterative():
    deep = []
    for _ in range(100000):
        deep = [deep]
    assert json_depth(deep) == 100001


@pytest.mark.parametrize("host,ok", [("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("localhost", True),
                                     ("127.evil.example", False), ("localhost.evil", False), ("10.0.0.1", False)])
def test_loopback_rule(host, ok):
    assert is_loopback(host) is ok


def test_every_message_id_has_a_catalog_entry():
    from pathlib import Path

    from abrunnerd import messages
    catalog = (Path(__file__).resolve().parents[2] / "systemd" / "abrunnerd.catalog").read_text()
    missing = [name for name, mid in messages.ALL.items() if "-- " + mid not in catalog]
    assert not missing, "MESSAGE_IDs without a catalog entry: %s" % missing
