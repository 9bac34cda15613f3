"""Named regressions for the daemon cases of issue 16, each against the lying server
(rel_harness/hostile_server.py, a real process) and the real daemon. Every run also
checks the invariants of ``hostile.run`` (decoys untouched, no traceback, RSS,
SIGTERM within 5 s)."""
import re

import pytest

from abrunnerd import messages
from rel_harness import hostile, record

@pytest.fixture
def case(request):
    """Each named regression is one case of the Hostile input table (docs/reliability.md)."""
    name = request.node.name.replace("test_", "", 1).replace("_", " ")
    with record.case("hostile", "issue 16: " + name) as c:
        yield c


J1 = "0f8b3b5e-6a1d-4c2e-9f3a-1b2c3d4e5f60"
J2 = "7d1e8f7a-2b0c-4c41-9a8e-3f5b6c7d8e9f"
M1 = "11111111-2222-4333-8444-555555555555"
M2 = "66666666-7777-4888-9999-aaaaaaaaaaaa"
LEASE = "9a9a9a9a-1b1b-4c4c-8d8d-2e2e2e2e2e2e"


def listing(first=J1):
    return {"status": 200, "body": {"jobs": [{"job_id": first, "dataset_name": "one", "created": "x"},
                                             {"job_id": J2, "dataset_name": "two", "created": "y"}]}}


def details(job=J1, **over):
    body = {"id": job, "dataset_id": "5e5e5e5e-4d4d-4c4c-8b8b-3a3a3a3a3a3a", "seed": 42,
            "options": {"c_values": [1], "gamma_values": [1], "preprocessing_values": ["basic"]},
            "dataset": {"name": "d", "classes": [{"name": "a", "recordings": [M1]}, {"name": "b", "recordings": [M2]}]}}
    body.update(over)
    return {"status": 200, "body": body}


def claim(**over):
    body = {"job_id": J1, "lease_id": LEASE, "lease_seconds": 600, "ping_interval": 30, "seed": 42,
            "features_url": "datasets/evaluation/jobs/%s/features" % J1, "features_sha256": None,
            "features_size": 4000, "resumed": False}
    body.update(over)
    return {"status": 200, "body": body}


SLOW_FEATURES = {"status": 200, "mode": "slow", "body": {"raw": "x" * 4000}}
WHOAMI = {"status": 200, "body": {"username": "u", "api_version": 1, "server_version": "t"}}


def seen(output, fragment):
    """The daemon's log line holding ``fragment``, without time stamp, paths and fields."""
    for line in output.splitlines():
        if fragment in line:
            line = line.split(" abrunnerd ", 1)[-1].split(" [job_id=")[0]
            return re.sub(r"/tmp/\S*?/work", "<work_dir>", re.sub(r"http://127\.0\.0\.1:\d+", "<server>", line))[:300]
    return "(no line with %r)" % fragment


def scenario(**answers):
    base = {"jobs": listing(), "details": details(), "whoami": WHOAMI,
            "fail": {"status": 200, "body": {"status": "failed"}}}
    base.update(answers)
    return {"job2": J2, "answers": base}


@pytest.mark.parametrize("job_id", ["../../decoy/victim", "{DECOY}/abs", ".."])
def test_path_like_job_id_never_becomes_a_path(hostile_server, case, job_id):
    r = hostile.run(hostile_server, scenario(jobs=listing(job_id), claim=claim()), 20,
                    until=lambda routes: "2:details" in routes)
    case.message = "%s; next job looked at" % seen(r.output, "left out")
    assert "2:details" in r.routes  # the queue moved on to the next job
    assert not any("decoy" in q["path"] or "/.." in q["path"] for q in r.requests), r.requests
    assert r.output.count("left out") == 1, r.output
    assert not any(k.startswith("jobs/") and "decoy" in k for k in r.work_tree)


@pytest.mark.parametrize("value", [-5, "NaN", 1e-9])
def test_claim_ping_interval_is_clamped(hostile_server, case, value):
    """-5, NaN or 1e-9 made the runner ping about 5 times a second."""
    body = claim()
    body["body"]["ping_interval"] = float("nan") if value == "NaN" else value
    r = hostile.run(hostile_server, scenario(claim=body, features=SLOW_FEATURES,
                                             ping={"status": 200, "body": {"cancel": False, "ping_interval": value}}),
                    25, until=lambda routes: routes.count("ping") >= 4)
    times = [q["t"] for q in r.requests if q["route"] == "ping"]
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    case.message = "claim ping_interval %r: %d pings, median gap %.2f s" % (value, len(times), gaps[len(gaps) // 2])
    assert len(times) >= 3, r.routes
    assert gaps[len(gaps) // 2] >= 0.9, gaps  # at most one a second (the documented minimum)


def test_cancel_on_every_ping_backs_off(hostile_server, case):
    """Every ping answering cancel: true gave a claim -> download -> cancel loop at ~5/s."""
    r = hostile.run(hostile_server, scenario(claim=claim(), features=SLOW_FEATURES,
                                             ping={"status": 200, "body": {"cancel": True}}), 25,
                    until=lambda routes: routes.count("claim") >= 2)
    times = [q["t"] for q in r.requests if q["route"] == "claim"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    case.message = "claims %.1f s apart (backoff); %s" % (min(gaps) if gaps else 0, seen(r.output, "canceled"))
    assert len(times) >= 2 and min(gaps) >= 1.4, times  # 2 s, 4 s … ±25 %, not ~5 claims a second
    assert "canceled" in r.output


@pytest.mark.parametrize("mode", ["slow", "endless"])
def test_slow_or_endless_job_list_does_not_block_sigterm(hostile_server, case, mode):
    """A job list sent at one byte per second blocked the daemon; SIGTERM waited 30 s."""
    r = hostile.run(hostile_server, scenario(jobs={"status": 200, "mode": mode, "body": {"jobs": []}}), 2.5)
    case.message = "SIGTERM while the job list arrives (%s): exit 0 after %.1f s" % (mode, r.stop_seconds)
    assert r.stop_seconds < hostile.STOP_LIMIT


def test_slow_job_list_hits_the_overall_deadline(hostile_server, case):
    r = hostile.run(hostile_server, scenario(jobs={"status": 200, "mode": "slow", "body": {"jobs": []}}), 20,
                    until=lambda routes: routes.count("jobs") >= 2)
    case.message = seen(r.output, "did not complete")
    assert "did not complete the exchange within 3 s" in r.output, r.output[-2000:]


@pytest.mark.parametrize("field,value", [("features_size", "12"), ("features_sha256", 12), ("seed", "42")])
def test_wrongly_typed_claim_fails_the_job_on_the_server(hostile_server, case, field, value):
    """Wrongly typed claim fields gave 'unexpected error, retrying' forever."""
    body = claim()
    body["body"][field] = value
    r = hostile.run(hostile_server, scenario(claim=body), 20, until=lambda routes: "2:details" in routes)
    case.message = "%s=%r: %s" % (field, value, seen(r.output, "cannot be trained"))
    assert "fail" in r.routes and "2:details" in r.routes, r.routes
    assert "'%s'" % field in r.output and "unexpected error" not in r.output


def test_deep_json_answer_is_one_line_no_traceback(hostile_server, case):
    """A 200,000-deep JSON answer logged a traceback on every retry."""
    r = hostile.run(hostile_server, scenario(jobs={"status": 200, "mode": "deep", "n": 200000}), 15,
                    until=lambda routes: "jobs" in routes)
    case.message = seen(r.output, "nested")
    assert "nested more than 64 deep" in r.output


def test_max_memory_and_a_dataset_that_is_a_list_do_not_block_the_queue(hostile_server, case):
    r = hostile.run(hostile_server, scenario(details=details(dataset=[1, 2]), claim=claim()), 20,
                    until=lambda routes: "2:details" in routes, extra={"max_memory": "1G"})
    case.message = seen(r.output, "cannot be trained")
    assert "2:details" in r.routes and "fail" in r.routes, r.routes


def test_redirect_to_https_is_reported_once_with_the_url_to_set(hostile_server, case):
    redirect = {"status": 301, "headers": {"Location": "https://127.0.0.1:1/api/v1/datasets/evaluation/jobs"},
                "body": None}
    r = hostile.run(hostile_server, scenario(jobs=redirect), 25, until=lambda routes: routes.count("jobs") >= 3)
    case.message = seen(r.output, "redirects")
    assert r.routes.count("jobs") >= 2
    assert r.output.count("set server_url to https://127.0.0.1:1") == 1, r.output
    assert "SSLError" not in r.output


def test_ab_only_server_with_301s_is_detected_once_and_missing_recordings_left_out(hostile_server, case):
    """AB's real server answers 301-to-https for claim/whoami; AB-only mode must say so
    once, log no 'claimed', and train without the recordings AB does not return."""
    moved = {"status": 301, "headers": {"Location": "https://127.0.0.1:1/"}, "body": None}
    doc = {"lowlevel": {"average_loudness": 0.5}, "metadata": {"tags": {}}}
    r = hostile.run(hostile_server, scenario(claim=moved, whoami=moved,
                                             lowlevel={"status": 200, "body": {M1: {"0": doc}, "mbid_mapping": {}}}),
                    30, until=lambda routes: routes.count("jobs") >= 3)
    out = r.output
    case.message = "%s; %s" % (seen(out, "has only"), seen(out, "no low-level document"))
    assert out.count("has only AcousticBrainz's API") == 1, out
    assert "claimed job" not in out and messages.JOB_CLAIMED not in out
    assert messages.JOB_LOCAL_STARTED in out
    assert "no low-level document for 1 of 2 recordings" in out and M2 in out
    assert "claim" in r.routes and "fail" not in r.routes  # nothing is reported to an AB-only server


def test_ab_only_detection_sticks_claim_is_asked_once(hostile_server):
    """After AB-only mode was detected the runner still sent a claim (and a whoami) for
    every job it looked at; detection now holds for the life of the process."""
    gone = {"status": 404, "body": {"message": "Not found"}}
    doc = {"lowlevel": {"average_loudness": 0.5}, "metadata": {"tags": {}}}
    r = hostile.run(hostile_server, scenario(claim=gone, whoami=gone, **{"2:claim": gone, "2:details": details(J2)},
                                             lowlevel={"status": 200, "body": {M1: {"0": doc}, M2: {"0": doc},
                                                                               "mbid_mapping": {}}}),
                    40, until=lambda routes: routes.count("jobs") >= 4 and "2:details" in routes)
    claims = [route for route in r.routes if route.endswith("claim")]
    assert r.output.count("has only AcousticBrainz's API") == 1, r.output
    assert claims == ["claim"] and r.routes.count("whoami") == 1, r.routes
    assert r.output.count(messages.JOB_LOCAL_STARTED) == 2, r.output  # both jobs trained here


def test_ab_only_detection_is_asked_again_after_a_reload(hostile_server, tmp_path):
    """SIGHUP (a new configuration, perhaps another server) ends the detection: the next
    job is offered to claim first, and the answer decides again."""
    import os
    import signal
    from rel_harness.daemon import Daemon
    from rel_harness.procs import wait_for
    gone = {"status": 404, "body": {"message": "Not found"}}
    doc = {"lowlevel": {"average_loudness": 0.5}, "metadata": {"tags": {}}}
    only_j1 = {"status": 200, "body": {"jobs": [{"job_id": J1, "dataset_name": "one", "created": "x"}]}}
    answers = dict(claim=gone, whoami=gone, **{"2:claim": gone, "2:details": details(J2)},
                   lowlevel={"status": 200, "body": {M1: {"0": doc}, M2: {"0": doc}, "mbid_mapping": {}}})
    hostile_server.set(scenario(jobs=only_j1, **answers))
    daemon = Daemon(tmp_path, hostile_server.url, hostile.TOKEN, name="reload-daemon").start()
    work = daemon.work_dir
    try:
        wait_for(lambda: (work / "results" / J1 / "result.json").exists() and not (work / "jobs" / J1).exists(),
                 60, what="job 1 done here")
        before = hostile_server.routes()
        os.kill(daemon.proc.pid, signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in daemon.output(), 10, what="the reload")
        hostile_server.set(scenario(**answers))  # J2 is pending too now (and the request log restarts)
        wait_for(lambda: (work / "results" / J2 / "result.json").exists(), 60, what="job 2 done here")
        after = hostile_server.routes()
    finally:
        daemon.stop()
    out = daemon.output()
    assert [r for r in before if r.endswith("claim")] == ["claim"] and before.count("whoami") == 1, before
    assert [r for r in after if r.endswith("claim")] == ["2:claim"] and after.count("whoami") == 1, after
    assert out.count("has only AcousticBrainz's API") == 2, out
    assert out.index("configuration reloaded") < out.rindex("has only AcousticBrainz's API")
    assert "Traceback" not in out, out


def test_rate_limit_reset_in_is_honoured(hostile_server, case):
    limited = {"status": 429, "headers": {"X-RateLimit-Reset-In": "30"}, "body": {"message": "rate limited"}}
    r = hostile.run(hostile_server, scenario(jobs=limited), 6)
    case.message = "X-RateLimit-Reset-In: 30 -> %d request(s) in 6 s" % r.routes.count("jobs")
    assert r.routes.count("jobs") == 1, r.routes


def test_error_text_without_code_has_no_stray_space(hostile_server, case):
    r = hostile.run(hostile_server, scenario(jobs={"status": 404, "body": {"message": "no such page"}}), 15,
                    until=lambda routes: "jobs" in routes)
    case.message = seen(r.output, "HTTP 404")
    assert "HTTP 404: no such page" in r.output and "HTTP 404 :" not in r.output


def test_corrupted_state_file_costs_only_that_job(hostile_server, case):
    """A state file that cannot be used is quarantined with a reason; the daemon goes on."""
    def prepare(work):
        for job, text in ((J1, "{not json"), ("not-a-uuid", "{}")):
            d = work / "jobs" / job
            d.mkdir(parents=True)
            (d / "state.json").write_text(text)
    r = hostile.run(hostile_server, scenario(jobs={"status": 200, "body": {"jobs": []}}), 15, prepare=prepare,
                    until=lambda routes: "jobs" in routes)
    case.message = seen(r.output, "quarantined")
    assert r.output.count("quarantined") == 2, r.output
    assert "jobs" in r.routes
    assert not any(k.startswith("jobs/" + J1) for k in r.work_tree)
    assert any(k.startswith("quarantine/") for k in r.work_tree)


@pytest.mark.parametrize("jobs_status,code,fragment", [(200, 0, "token is accepted"), (401, 77, "token rejected")])
def test_check_config_on_an_ab_only_server_tells_good_from_bad_tokens(hostile_server, tmp_path, case,
                                                                        jobs_status, code, fragment):
    """AB answers whoami 404 before it checks the token; check-config asks the job list instead."""
    import os
    import subprocess
    import sys
    hostile_server.set(scenario(whoami={"status": 404, "body": {"message": "Not found"}},
                                jobs={"status": jobs_status, "body": {"jobs": []} if jobs_status == 200
                                      else {"message": "unknown token"}}))
    token = tmp_path / "token"
    token.write_text(hostile.TOKEN + "\n")
    os.chmod(str(token), 0o600)
    cfg = tmp_path / "abrunnerd.yaml"
    cfg.write_text("server_url: %s\ntoken_file: %s\nwork_dir: %s\n" % (hostile_server.url, token, tmp_path / "w"))
    proc = subprocess.run([sys.executable, "-c", "import sys; from abrunnerd.ctl import main; sys.exit(main())",
                           "check-config", "--config", str(cfg)], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(hostile.Path(__file__).resolve().parents[2])))
    out = proc.stdout + proc.stderr
    case.message = "exit %d: %s" % (proc.returncode, re.sub(r"http://127\.0\.0\.1:\d+", "<server>",
                                                              out.strip().splitlines()[-1])[:250])
    assert proc.returncode == code and fragment in out and "Traceback" not in out, out


def test_jobs_shows_results_kept_locally(hostile_server, tmp_path, case):
    """AB-only mode: `abrunnerctl jobs` showed locally trained jobs as pending with no hint."""
    import json
    import os
    import subprocess
    import sys
    hostile_server.set(scenario())
    work = tmp_path / "w"
    for job, result in ((J1, {"accuracy": 91.25}), (J2, {"failed": "the dataset needs at least 2 classes"})):
        (work / "results" / job).mkdir(parents=True)
        (work / "results" / job / "result.json").write_text(json.dumps(result))
    token = tmp_path / "token"
    token.write_text(hostile.TOKEN + "\n")
    os.chmod(str(token), 0o600)
    cfg = tmp_path / "abrunnerd.yaml"
    cfg.write_text("server_url: %s\ntoken_file: %s\nwork_dir: %s\n" % (hostile_server.url, token, work))
    proc = subprocess.run([sys.executable, "-c", "import sys; from abrunnerd.ctl import main; sys.exit(main())",
                           "jobs", "--config", str(cfg)], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(hostile.Path(__file__).resolve().parents[2])))
    lines = proc.stdout.splitlines()
    case.message = "; ".join(l.replace(str(work), "<work_dir>") for l in lines)[:300]
    assert proc.returncode == 0, proc.stderr
    assert any(J1 in l and "trained here: accuracy 91.25 %" in l for l in lines), lines
    assert any(J2 in l and "failed here: the dataset needs" in l for l in lines), lines
