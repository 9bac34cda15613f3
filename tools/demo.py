#!/usr/bin/env python3
"""`make demo`: the whole product in one command, on a fresh clone.

In a fresh temporary directory: start the reference job server on SQLite, add a user,
import the bundled sample dataset (examples/ab-real-small), submit a remote job with
AcousticBrainz's default grid, run `abrunnerd --once` with a generated config until the
job is done, then print accuracy, best parameters and the confusion matrix as the
server has them. Everything is removed afterwards (--keep keeps it).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, REPO)

import requests  # noqa: E402

from helpers.server import EXAMPLE_DATASET, ServerProcess  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--workers", type=int, default=2, help="training processes (default 2)")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="abrunnerd-demo-")
    try:
        return demo(tmp, args.workers)
    finally:
        if args.keep:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def demo(tmp: str, workers: int) -> int:
    print("== starting the job server on SQLite in %s" % tmp, flush=True)
    with ServerProcess(os.path.join(tmp, "server")) as srv:
        token = srv.add_user("demo")
        dataset = srv.import_dataset(EXAMPLE_DATASET, owner="demo")
        job = srv.submit(dataset)  # AcousticBrainz's default grid
        print("== imported %s as dataset %s; submitted job %s (AB's default grid)"
              % (os.path.relpath(str(EXAMPLE_DATASET), REPO), dataset, job), flush=True)
        token_file = os.path.join(tmp, "token")
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        config = os.path.join(tmp, "abrunnerd.yaml")
        with open(config, "w") as f:
            f.write("server_url: %s\ntoken_file: %s\nwork_dir: %s\nmax_workers: %d\n"
                    "dbus_bus: none\nlog_target: stderr\npoll_interval: 2\nping_interval: 5\n"
                    % (srv.base_url, token_file, os.path.join(tmp, "work"), workers))
        print("== running abrunnerd --once --config %s" % config, flush=True)
        started = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", "abrunnerd.daemon", "--config", config, "--once"],
                             cwd=REPO)
        if rc != 0:
            print("abrunnerd exited with status %d" % rc, file=sys.stderr)
            return rc
        answer = requests.get(srv.url("/datasets/evaluation/jobs/" + job), headers=srv.auth(token), timeout=30)
        answer.raise_for_status()
        details = answer.json()
        print_result(details, time.monotonic() - started)
        return 0 if details.get("status") == "done" else 1


def print_result(details: dict, seconds: float) -> None:
    print("\n== job %s: %s after %.0f s" % (details["id"], details["status"], seconds))
    result = details.get("result") or {}
    if not result:
        print("no result: %s" % (details.get("status_msg") or "?"))
        return
    model = result["parameters"]["model"]
    print("accuracy:        %.2f %%" % result["accuracy"])
    print("best parameters: preprocessing %s, kernel %s, C = 2^%s, gamma = 2^%s"
          % (model["preprocessing"], model["kernel"], model["C"], model["gamma"]))
    matrix = result["confusion_matrix"]
    classes = sorted(matrix)
    width = max(len(c) for c in classes + ["actual \\ predicted"])
    print("confusion matrix (rows: actual, columns: predicted):")
    print("  " + "actual \\ predicted".ljust(width) + "".join(c.rjust(width + 2) for c in classes))
    for actual in classes:
        print("  " + actual.ljust(width) + "".join(str(matrix[actual].get(p, 0)).rjust(width + 2)
                                                   for p in classes))


if __name__ == "__main__":
    sys.exit(main())
