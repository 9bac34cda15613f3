"""For ``benchmarks/submit_during_pings.py`` only: abserver's WSGI app plus one path that builds a
snapshot the way submit did before issue 17 item 6, inside a gunicorn worker's request thread
(read connection, then a short write transaction), so the benchmark can measure both ways side
by side. Not part of the server; loopback benchmarks only (the path has no authentication).

    ABSERVER_DB=sqlite:///... gunicorn 'inrequest_submit:app'   (benchmarks/ on PYTHONPATH)
"""
import json
import time

from flask import jsonify

from abserver.datasets import build_snapshot, get_dataset, store_snapshot
from abserver.wsgi import app
from abserver.context import ENGINE_KEY


@app.route("/bench/build-in-request/<dataset_id>/<int:owner_id>", methods=["POST"])
def build_in_request(dataset_id, owner_id):
    engine = app.extensions[ENGINE_KEY]
    start = time.monotonic()
    with engine.connect() as conn:  # the previous submit: the whole build in this request's thread
        dataset = get_dataset(conn, dataset_id, owner_id)
        built = build_snapshot(conn, dataset, json.loads('{"c_values": [1], "gamma_values": [-3], '
                                                         '"preprocessing_values": ["basic"]}'))
    with engine.begin() as conn:
        store_snapshot(conn, dataset_id, built)
    return jsonify({"seconds": time.monotonic() - start})
