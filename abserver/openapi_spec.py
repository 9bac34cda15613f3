"""Builds ``openapi.json`` (served at /api/v1/openapi.json). Regenerate after API changes:

    python -m abserver.openapi_spec > abserver/openapi.json

A test checks that the committed file equals this module's output.
"""
import json
import sys
from typing import Any, Dict, List

from . import __version__
from .jobs import STATES

UUID = {"type": "string", "format": "uuid"}
NULLABLE_STR = {"type": "string", "nullable": True}
HTTP_DATE = {"type": "string", "description": "HTTP-date (RFC 7231), e.g. Wed, 25 Nov 2026 20:04:49 GMT"}


def ref(name: str) -> Dict[str, str]:
    return {"$ref": "#/components/schemas/%s" % name}


def obj(props: Dict[str, Any], required: List[str] = None, extra: bool = False) -> Dict[str, Any]:
    out: Dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": extra}
    if required:
        out["required"] = required
    return out


def json_content(schema: Dict[str, Any]) -> Dict[str, Any]:
    return {"application/json": {"schema": schema}}


ERRORS = {
    400: "Malformed request: bad parameter, invalid JSON, unknown or missing field",
    401: "No Authorization header, an unknown, rotated or revoked token, or a disabled user",
    403: "Authenticated but not allowed (another user's document)",
    404: "No such object, or it belongs to another owner",
    405: "Method not allowed on this path",
    409: "State conflict (see the code)",
    413: "Request body too large",
    415: "Wrong Content-Type",
    416: "Range not satisfiable",
    422: "Well-formed but invalid content (see the code)",
    503: "Busy: retry later",
}


def responses(ok: Dict[int, Any], *errors: int) -> Dict[str, Any]:
    out = {str(code): value for code, value in ok.items()}
    for code in (401,) + errors:
        out[str(code)] = {"description": ERRORS[code], "content": json_content(ref("Error"))}
    return out


def ok_json(description: str, schema: Dict[str, Any]) -> Dict[str, Any]:
    return {"description": description, "content": json_content(schema)}


JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
JOB_PATH = "/datasets/evaluation/jobs/{job_id}"

OPTIONS = obj({
    "c_values": {"type": "array", "items": {"type": "integer"}, "description": "log2 exponents of C"},
    "gamma_values": {"type": "array", "items": {"type": "integer"}, "description": "log2 exponents of gamma"},
    "preprocessing_values": {"type": "array", "items": {
        "type": "string", "enum": ["basic", "lowlevel", "nobands", "normalized", "gaussianized"]}},
    "filter_type": {"type": "string", "enum": ["artist"], "nullable": True},
    "normalize": {"type": "boolean"},
})

SCHEMAS = {
    "Error": obj({"code": {"type": "string"}, "message": {"type": "string"}, "error": {"type": "string"},
                  # with 413 quota_exceeded only: the owner's usage, the refused store's size, the quota
                  "used_bytes": {"type": "integer"}, "adding_bytes": {"type": "integer"},
                  "quota_bytes": {"type": "integer"}},
                 ["code", "message", "error"]),
    "Whoami": obj({"username": {"type": "string"}, "api_version": {"type": "integer"},
                   "server_version": {"type": "string"}}, ["username", "api_version", "server_version"]),
    "JobList": obj({"username": {"type": "string"}, "jobs": {"type": "array", "items": obj(
        {"job_id": UUID, "dataset_name": {"type": "string"}, "created": HTTP_DATE},
        ["job_id", "dataset_name", "created"])}}, ["username", "jobs"]),
    "Class": obj({"id": {"type": "string"}, "name": {"type": "string"}, "description": {"type": "string"},
                  "recordings": {"type": "array", "items": UUID}}, ["id", "name", "description", "recordings"]),
    "Options": OPTIONS,
    "Progress": obj({
        "stage": {"type": "string"}, "fraction": {"type": "number", "nullable": True},
        "eta_seconds": {"type": "number", "nullable": True}, "message": NULLABLE_STR,
        "cells_done": {"type": "integer", "nullable": True}, "cells_total": {"type": "integer", "nullable": True},
        "runner_name": NULLABLE_STR, "runner_version": NULLABLE_STR, "at": HTTP_DATE,
    }),
    "JobDetails": obj({
        "id": UUID, "dataset_id": UUID,
        "snapshot_id": {"type": "string", "format": "uuid", "nullable": True,
                        "description": "null while the job is preparing"},
        "status": {"type": "string", "enum": list(STATES),
                   "description": "preparing: submitted, its snapshot not built yet (not listed, not claimable)"},
        "error_code": {"type": "string", "nullable": True,
                       "description": "why the snapshot's build failed (too_wide, missing_lowlevel, ...)"},
        "status_msg": NULLABLE_STR, "eval_location": {"type": "string", "enum": ["remote", "local"]},
        "options": ref("Options"), "result": {"type": "object", "nullable": True},
        "created": HTTP_DATE, "updated": HTTP_DATE, "seed": {"type": "integer"},
        "progress": {"allOf": [ref("Progress")], "nullable": True}, "stalled": {"type": "boolean"},
        "testing_snapshot": {"nullable": True}, "training_snapshot": {"nullable": True},
        "dataset": obj({
            "id": UUID, "name": {"type": "string"}, "description": {"type": "string"},
            "author": {"type": "integer"}, "public": {"type": "boolean"}, "created": HTTP_DATE,
            "last_edited": HTTP_DATE, "num_recordings": {"type": "integer"},
            "classes": {"type": "array", "items": ref("Class")},
        }, ["id", "name", "description", "author", "public", "created", "last_edited", "num_recordings",
            "classes"]),
    }, ["id", "dataset_id", "snapshot_id", "status", "status_msg", "eval_location", "options", "result",
        "created", "updated", "seed", "progress", "dataset"]),
    "ClaimRequest": obj({"runner_id": UUID, "runner_name": {"type": "string", "maxLength": 255},
                         "runner_version": {"type": "string", "maxLength": 255},
                         "lease_id": {"type": "string", "format": "uuid", "nullable": True}},
                        ["runner_id", "runner_name", "runner_version"]),
    "Claim": obj({"job_id": UUID, "lease_id": UUID, "lease_seconds": {"type": "integer"},
                  "ping_interval": {"type": "integer"}, "seed": {"type": "integer"},
                  "features_url": {"type": "string"}, "features_sha256": {"type": "string"},
                  "features_size": {"type": "integer"}, "resumed": {"type": "boolean"}},
                 ["job_id", "lease_id", "lease_seconds", "ping_interval", "seed", "features_url",
                  "features_sha256", "features_size", "resumed"]),
    "PingRequest": obj({
        "lease_id": UUID, "runner_name": {"type": "string", "maxLength": 255},
        "runner_version": {"type": "string", "maxLength": 255},
        "stage": {"type": "string", "enum": ["claimed", "downloading", "training", "uploading", "paused"]},
        "fraction": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
        "eta_seconds": {"type": "number", "minimum": 0, "nullable": True},
        "message": {"type": "string", "maxLength": 1000, "nullable": True},
        "cells_done": {"type": "integer", "minimum": 0, "nullable": True},
        "cells_total": {"type": "integer", "minimum": 0, "nullable": True},
    }, ["lease_id", "runner_name", "runner_version", "stage"]),
    "PingAnswer": obj({"cancel": {"type": "boolean"}, "ping_interval": {"type": "integer"},
                       "lease_seconds": {"type": "integer"}, "stalled": {"type": "boolean"}},
                      ["cancel", "ping_interval", "lease_seconds", "stalled"]),
    "FailRequest": obj({"lease_id": UUID, "reason": {"type": "string", "maxLength": 4000}},
                       ["lease_id", "reason"]),
    "JobStatus": obj({"job_id": {"type": "string"}, "status": {"type": "string"}}, ["job_id", "status"]),
    "UploadAnswer": obj({"job_id": UUID, "status": {"type": "string", "enum": ["done"]},
                         "replayed": {"type": "boolean"}}, ["job_id", "status", "replayed"]),
    "DatasetRequest": obj({
        "name": {"type": "string", "minLength": 1, "maxLength": 255}, "description": {"type": "string"},
        "public": {"type": "boolean"},
        "classes": {"type": "array", "minItems": 1, "items": obj({
            "name": {"type": "string", "minLength": 1, "maxLength": 255}, "description": {"type": "string"},
            "recordings": {"type": "array", "items": UUID}}, ["name", "recordings"])},
    }, ["name", "classes"]),
    "EvaluateRequest": obj({"eval_location": {"type": "string", "enum": ["remote", "local"]},
                            "options": {"allOf": [ref("Options")], "nullable": True},
                            "seed": {"type": "integer", "minimum": 0, "maximum": 2147483647, "nullable": True}}),
}


def build() -> Dict[str, Any]:
    paths = {
        "/openapi.json": {"get": {"summary": "This document", "security": [],
                                  "responses": {"200": ok_json("OpenAPI document", {"type": "object"})}}},
        "/whoami": {"get": {"summary": "The token's user and the API version",
                            "responses": responses({200: ok_json("Who you are", ref("Whoami"))})}},
        "/datasets/evaluation/jobs": {"get": {
            "summary": "Pending remote jobs of the token's owner, oldest first (AcousticBrainz path)",
            "parameters": [
                {"name": "status", "in": "query", "required": True, "schema": {"type": "string", "enum": ["pending"]}},
                {"name": "location", "in": "query", "required": True,
                 "schema": {"type": "string", "enum": ["remote"]}}],
            "responses": responses({200: ok_json("Job list", ref("JobList"))}, 400)}},
        JOB_PATH: {"get": {"summary": "Job details with the frozen snapshot (AcousticBrainz path)",
                           "parameters": [JOB_ID],
                           "responses": responses({200: ok_json("Job", ref("JobDetails"))}, 404)}},
        JOB_PATH + "/claim": {"post": {
            "summary": "Take a pending remote job; returns a lease", "parameters": [JOB_ID],
            "requestBody": {"required": True, "content": json_content(ref("ClaimRequest"))},
            "responses": responses({200: ok_json("Lease", ref("Claim"))}, 400, 404, 409, 413, 415)}},
        JOB_PATH + "/features": {"get": {
            "summary": "The features bundle of the job's snapshot (Range: bytes=N- resumes)",
            "parameters": [JOB_ID,
                           {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}}],
            "responses": responses({
                200: {"description": "Bundle", "content": {"application/x-abrunner-features": {
                    "schema": {"type": "string", "format": "binary"}}}},
                206: {"description": "Part of the bundle", "content": {"application/x-abrunner-features": {
                    "schema": {"type": "string", "format": "binary"}}}},
                304: {"description": "Not modified (If-None-Match matched the ETag)"},
            }, 404, 409, 416)}},
        JOB_PATH + "/ping": {"post": {
            "summary": "Status ping; renews the lease", "parameters": [JOB_ID],
            "requestBody": {"required": True, "content": json_content(ref("PingRequest"))},
            "responses": responses({200: ok_json("Pace and cancel flag", ref("PingAnswer"))},
                                   400, 404, 409, 413, 415, 503)}},
        JOB_PATH + "/fail": {"post": {
            "summary": "The runner gives up on the job", "parameters": [JOB_ID],
            "requestBody": {"required": True, "content": json_content(ref("FailRequest"))},
            "responses": responses({200: ok_json("Failed", ref("JobStatus"))}, 400, 404, 409, 413, 415)}},
        JOB_PATH + "/result": {"put": {
            "summary": "Upload result JSON and Gaia .history model", "parameters": [JOB_ID],
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": obj({
                "lease_id": UUID, "result": {"type": "string", "description": "the Result JSON"},
                "model": {"type": "string", "format": "binary"}}, ["lease_id", "result", "model"])}}},
            "responses": responses({201: ok_json("Stored", ref("UploadAnswer")),
                                    200: ok_json("Identical upload again", ref("UploadAnswer"))},
                                   400, 404, 409, 413, 415, 422)}},
        JOB_PATH + "/cancel": {"post": {
            "summary": "The owner cancels a pending or running job", "parameters": [JOB_ID],
            "responses": responses({200: ok_json("Canceled", ref("JobStatus"))}, 400, 404, 409, 413, 415)}},
        JOB_PATH + "/model": {"get": {
            "summary": "Download the job's Gaia .history", "parameters": [JOB_ID],
            "responses": responses({200: {"description": "The model", "content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}}}, 404)}},
        "/low-level": {"get": {
            "summary": "Up to 25 low-level documents (AcousticBrainz bulk form): the requester's own, then "
                       "those of owners naming the recording in a public dataset (offsets 0, 1, ...)",
            "parameters": [{"name": "recording_ids", "in": "query", "required": True,
                            "schema": {"type": "string"}, "description": "mbid[:offset];mbid…"}],
            "responses": responses({200: ok_json("{mbid: {\"0\": document}, \"mbid_mapping\": {}}",
                                                 {"type": "object"})}, 400)}},
        "/low-level/{mbid}": {"put": {
            "summary": "Store a low-level document", "parameters": [
                {"name": "mbid", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": json_content({"type": "object"})},
            "responses": responses({200: ok_json("Stored (the requester's own document of the recording)",
                                                 obj({"mbid": UUID}, ["mbid"]))},
                                   400, 413, 415, 422)}},
        "/storage": {"get": {
            "summary": "What the requester stores, by kind, against the per-owner quota (bytes; quota 0: none)",
            "responses": responses({200: ok_json("Usage", obj({
                "username": {"type": "string"}, "used_bytes": {"type": "integer"},
                "quota_bytes": {"type": "integer"}, "free_bytes": {"type": "integer", "nullable": True},
                "by_kind": obj({k: {"type": "integer"} for k in ("documents", "bundles", "datasets", "results")},
                               ["documents", "bundles", "datasets", "results"])},
                ["username", "used_bytes", "quota_bytes", "free_bytes", "by_kind"]))})}},
        "/token/rotate": {"post": {
            "summary": "A new token for the requester; the token of this request answers 401 from now on",
            "responses": responses({200: ok_json("The new token (shown only now)", obj(
                {"username": {"type": "string"}, "token": {"type": "string"}}, ["username", "token"]))},
                400, 413, 415)}},
        "/token": {"delete": {
            "summary": "Revoke the requester's token (answers 401 from now on; the admin issues a new one)",
            "responses": responses({200: ok_json("Revoked", obj(
                {"username": {"type": "string"}, "revoked": {"type": "boolean"}}, ["username", "revoked"]))})}},
        "/datasets": {"post": {
            "summary": "Create a dataset (AcousticBrainz form)",
            "requestBody": {"required": True, "content": json_content(ref("DatasetRequest"))},
            "responses": responses({201: ok_json("Created", obj({"success": {"type": "boolean"},
                                                                 "dataset_id": UUID},
                                                                ["success", "dataset_id"]))}, 400, 413, 415, 422)}},
        "/datasets/{dataset_id}/evaluate": {"post": {
            "summary": "Queue an evaluation job; its snapshot is built in the background",
            "parameters": [{"name": "dataset_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": json_content(ref("EvaluateRequest"))},
            "responses": responses({202: ok_json(
                "Accepted: the job is 'preparing' until a build worker has frozen its snapshot and features "
                "bundle; then 'pending' (or 'failed' with error_code). Location: the job's details.",
                obj({"job_id": UUID, "status": {"type": "string", "enum": ["preparing"]}}, ["job_id", "status"]))},
                                   400, 404, 413, 415, 422)}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "abrunnerd job server (abserver)", "version": __version__,
                 "description": "The remote-evaluation protocol; docs/protocol.md is the prose description."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"token": []}],
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization",
                                          "description": "'Token <key>' (AcousticBrainz's header)"}},
            "schemas": SCHEMAS,
        },
        "paths": paths,
    }


def render() -> str:
    return json.dumps(build(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
