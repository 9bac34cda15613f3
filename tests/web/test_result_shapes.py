"""Results of the shapes the protocol allows render: one without per-configuration accuracies
(``combinations`` is optional) still has its page, its downloads and its predictions."""
import json

import sqlalchemy as sa

from abserver import builder
from abserver.app import create_app
from abserver.jobs import submit
from helpers.jobflow import example_model
from helpers.web import in_process_owner, sign_in_client


def test_result_without_combinations(tmp_path):
    url, engine, token, uid, dataset = in_process_owner(tmp_path / "r.db")
    job = submit(engine, dataset, uid, "remote", {"c_values": [1], "gamma_values": [-3],
                                                  "preprocessing_values": ["basic"]}, 42)
    assert builder.build_queued(engine) == 1  # the build worker's work, in this process
    result = {"parameters": {"model": {"classifier": "svm", "type": "C-SVC", "preprocessing": "basic",
                                       "kernel": "RBF", "C": 1, "gamma": -3}},
              "accuracy": 66.67, "confusion_matrix": {"orchestral": {"orchestral": 20},
                                                      "electronic": {"orchestral": 20}, "speech": {"speech": 20}}}
    with engine.begin() as conn:  # stored as an upload would (the server validated this shape)
        conn.execute(sa.text("UPDATE jobs SET status = 'done', result = :r, model = :m, upload_sha256 = :h "
                             "WHERE id = :j"), {"r": json.dumps(result), "m": example_model(), "h": "0" * 64,
                                               "j": job})
    client = create_app(url).test_client()
    sign_in_client(client, token)
    page = client.get("/jobs/%s/result" % job).get_data(as_text=True)
    assert "66.67 %" in page and "no per-configuration accuracies" in page
    assert page.count('class="plot"') == 1, "only the confusion matrix"
    assert client.get("/jobs/%s/plots/grid-basic-RBF.svg" % job).status_code == 404
    assert client.get("/jobs/%s/files/ranking.tsv" % job).get_data(as_text=True).count("\n") == 1
    predictions = client.get("/jobs/%s/files/predictions.json" % job).get_json()
    assert len(predictions) == 60 and all(p["value"] in ("orchestral", "electronic", "speech")
                                          for p in predictions.values())
