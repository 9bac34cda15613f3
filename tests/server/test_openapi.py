"""The OpenAPI document: committed file = generator output, and the live server conforms to it.

schemathesis generates requests for every operation from ``/api/v1/openapi.json`` and
checks the answers on loopback: no 5xx, only documented status codes and content
types, and bodies matching the response schemas. Path ids are pointed at a real job
most of the time, so the stateful paths (claim, ping, result) are reached too.
"""
import pytest
from hypothesis import HealthCheck, given, settings

from abserver.openapi_spec import render
from helpers.server import REPO

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a pip test tool (requirements-test.txt)")
from schemathesis.checks import (content_type_conformance, not_a_server_error,  # noqa: E402
                                 response_schema_conformance, status_code_conformance)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 25


def test_committed_openapi_matches_generator():
    committed = (REPO / "abserver" / "openapi.json").read_text()
    assert committed == render(), "regenerate: python -m abserver.openapi_spec > abserver/openapi.json"


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory):
    from helpers.server import ServerProcess

    srv = ServerProcess(tmp_path_factory.mktemp("fuzz"), args=("--spot-check-cells", "0")).start()
    token = srv.add_user("fuzzer")
    dataset = srv.import_dataset(owner="fuzzer")
    jobs = [srv.submit(dataset, "--c-values", "1", "--gamma-values", "1", "--preprocessing", "basic")
            for _ in range(2)]
    srv.token_users = {mode: srv.add_user("fuzz-tokens-%s" % mode) for mode in ("positive", "negative")}
    yield srv, token, jobs
    srv.stop()


def _operations(srv):
    schema = schemathesis.openapi.from_url(srv.url("/openapi.json"))
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_api_conforms_to_its_openapi_document(fuzz_target, mode):
    """Every operation, EXAMPLES generated requests each (valid ones, then invalid ones)."""
    srv, token, jobs = fuzz_target
    headers = {"Authorization": "Token %s" % token}
    generation_mode = getattr(schemathesis.GenerationMode, mode.upper())
    # The token paths rotate or revoke the token they are called with: they run last, with
    # their own user's token, so the other operations keep a working one.
    operations = sorted(_operations(srv), key=lambda op: op.path.startswith("/token"))
    assert len(operations) >= 16
    statuses = []
    for operation in operations:
        if operation.path.startswith("/token"):
            headers = {"Authorization": "Token %s" % srv.token_users[mode]}
        params = None
        if "{job_id}" in operation.path and not operation.path.endswith("/cancel"):
            params = {"job_id": jobs[0] if mode == "positive" else jobs[1]}  # reach the stateful paths

        @given(case=operation.as_strategy(generation_mode=generation_mode, path_parameters=params))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            response = case.call_and_validate(base_url=srv.url(""), headers=headers, checks=CHECKS, timeout=60)
            statuses.append(response.status_code)

        run()
    assert len(statuses) >= 3 * len(operations), "schemathesis sent too few requests"
    print("%s: %d requests, statuses %s" % (mode, len(statuses), sorted(set(statuses))))
