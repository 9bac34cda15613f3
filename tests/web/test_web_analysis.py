"""The pure result views behind the result page: landscape, tie band, ranking, class metrics."""
from abserver.web import analysis


def _result():
    combos = []
    for pre in ("basic", "lowlevel"):
        for kernel in ("RBF", "poly"):
            for c in (1, 3):
                for g in (-3, -1):
                    acc = {("lowlevel", "RBF", 3, -1): 95.0, ("lowlevel", "RBF", 1, -1): 94.5,
                           ("basic", "poly", 1, -3): 94.0}.get((pre, kernel, c, g), 80.0)
                    combos.append({"preprocessing": pre, "kernel": kernel, "C": c, "gamma": g, "status": "ok",
                                   "accuracy": acc, "fold_correct": [1], "fold_total": [1], "error": None})
    combos[0] = dict(combos[0], status="failed", accuracy=None, error="broke\tline\nnext")
    return {"parameters": {"model": {"preprocessing": "lowlevel", "kernel": "RBF", "C": 3, "gamma": -1}},
            "accuracy": 95.0, "combinations": combos}


OPTIONS = {"preprocessing_values": ["basic", "lowlevel"], "c_values": [3, 1], "gamma_values": [-1, -3]}


def test_landscape_marks_the_best_cell_and_the_one_point_tie_band():
    panels = analysis.landscape(_result(), OPTIONS, ["RBF", "poly"])
    assert [(p.preprocessing, p.kernel) for p in panels] == [("basic", "RBF"), ("basic", "poly"),
                                                             ("lowlevel", "RBF"), ("lowlevel", "poly")]
    best = panels[2]
    assert best.c_values == [1, 3] and best.gamma_values == [-3, -1], "axes ascending"
    assert best.best == (1, 1) and best.accuracy[1][1] == 95.0
    assert sorted(best.ties) == [(0, 1), (1, 1)], "94.5 is within 1 point of 95.0"
    assert panels[1].ties == [(0, 0)] and panels[1].best is None, "94.0 is exactly 1 point below: in the band"
    assert panels[0].accuracy[0][0] is None, "the failed configuration is a hole"


def test_ranking_is_best_first_with_failures_last_and_tsv_fields_cannot_break_rows():
    rows = analysis.ranking(_result())
    assert [r["accuracy"] for r in rows[:3]] == [95.0, 94.5, 94.0] and rows[0]["rank"] == 1
    assert rows[-1]["status"] == "failed" and rows[-1]["rank"] is None
    tsv = analysis.ranking_tsv(_result()).splitlines()
    assert len(tsv) == 1 + 16 and all(len(line.split("\t")) == 10 for line in tsv)
    assert tsv[-1].endswith("failed\tbroke line next")


def test_confusion_rows_give_recall_and_precision():
    rows = analysis.confusion({"a": {"a": 8, "b": 2}, "b": {"b": 5}}, ["a", "b"])
    assert rows[0].recall == 80.0 and rows[0].precision == 100.0
    assert rows[1].recall == 100.0 and round(rows[1].precision, 2) == 71.43


def test_misclassified_come_from_predictions_most_confident_first():
    truth = analysis.class_of([{"name": "a", "recordings": ["1", "2"]}, {"name": "b", "recordings": ["3", "2"]}])
    assert truth == {"1": "a", "2": "b", "3": "b"}, "a recording in two classes counts for the later one"
    preds = {"1": {"value": "b", "all": {"a": 0.4, "b": 0.6}}, "2": {"value": "a", "all": {"a": 0.9, "b": 0.1}},
             "3": {"value": "b", "all": {"a": 0.1, "b": 0.9}}}
    wrong = analysis.misclassified(preds, truth)
    assert [(w["mbid"], w["predicted"], w["probability"]) for w in wrong] == [("2", "a", 0.9), ("1", "b", 0.6)]


def test_powers_of_two_are_written_with_superscripts():
    assert [analysis.exp2(v) for v in (-11, 0, 3)] == ["2⁻¹¹", "2⁰", "2³"]
