"""The reports Gaia's classification scripts write, made from a :class:`TrainResult`.

* ``report.tsv``: ``generate_params_report``'s columns.  Rows are in our ranking (pooled
  accuracy, then the tie rule of ``train.choose_best``, so row 1 is the chosen model)
  instead of Gaia's ``(accuracy, fold std, normalized accuracy, normalized std, result
  file name)`` sort, whose last key is a hash.  ``normalized_accuracy_rank`` follows
  Gaia's own rule (sort by normalized accuracy, ties: the *lower* accuracy rank first).
  ``results_file`` / ``param_file`` point at the configuration's line in
  ``configurations.jsonl`` (Gaia: one ``.result`` / ``.param`` file per configuration).
  Failed configurations have no row, as they have no result file in Gaia.
* ``configurations.jsonl``: every configuration, one JSON object per line: Gaia's
  ``.param`` content, its accuracy statistics, the per-fold counts and confusion matrices.
* ``<name>.history.results.html``: ``select_best_model``'s page (heading, accuracies,
  ``ConfusionMatrix.toHtml``), with every name HTML-escaped.
* ``<name>.history.param``: the best configuration's ``.param`` (YAML).
* ``project.yaml``: the project actually used, in Gaia's project-file form.

Statistics as ``ConfusionMatrix``: accuracy = pooled correct / total; std = population
standard deviation of the per-fold accuracies (folds holding test points);
normalized accuracy = mean over folds of the mean per-class recall of the classes
present in the fold.
"""
import html
import json
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from abrunnerd.trainer.options import TrainOptions
from abrunnerd.trainer.result import Combination, TrainResult
from abrunnerd.trainer.templates import preprocessing_steps

TSV_COLUMNS = ["accuracy_rank", "accuracy", "accuracy_std", "normalized_accuracy_rank", "normalized_accuracy",
               "normalized_accuracy_std", "results_file", "param_file", "kernel", "C", "preprocessing",
               "balance_classes", "type", "classifier", "gamma", "evaluation"]
CONFIGURATIONS = "configurations.jsonl"


def _std(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((x - mean) * (x - mean) for x in values) / len(values))


def gaia_statistics(combo: Combination) -> Optional[Dict[str, float]]:
    """Gaia's (accuracy, accuracy_std, normalized_accuracy, normalized_accuracy_std); None if failed."""
    if combo.accuracy is None:
        return None
    accs, norms = [], []
    for cm in combo.fold_confusion:
        if not cm:
            continue
        total = sum(sum(row) for row in cm)
        if not total:
            continue
        accs.append(sum(cm[i][i] for i in range(len(cm))) * 100.0 / total)
        recalls = [cm[i][i] * 100.0 / sum(row) for i, row in enumerate(cm) if sum(row)]
        norms.append(sum(recalls) / len(recalls))
    if not accs:
        return None
    return {"accuracy": combo.correct * 100.0 / combo.total, "accuracy_std": _std(accs),
            "normalized_accuracy": sum(norms) / len(norms), "normalized_accuracy_std": _std(norms)}


def model_params(combo: Combination) -> Dict[str, Any]:
    """The ``model`` part of Gaia's ``.param`` file."""
    return {"classifier": "svm", "preprocessing": combo.preprocessing, "type": "C-SVC", "kernel": combo.kernel,
            "C": combo.c, "gamma": combo.gamma, "balanceClasses": bool(combo.balance_classes)}


def ranking(result: TrainResult, opts: TrainOptions) -> List[Combination]:
    """Trained configurations, best first, by the rule that chose ``result.best``."""
    from abrunnerd.trainer.train import neighbourhood_mean

    table = {c.key(): c for c in result.combinations}
    order = {id(c): i for i, c in enumerate(result.combinations)}
    ok = [c for c in result.combinations if c.accuracy is not None]
    ok.sort(key=lambda c: (-c.correct * 1.0 / c.total, -neighbourhood_mean(c, table, opts), order[id(c)]))
    return ok


def report_rows(result: TrainResult, opts: TrainOptions) -> List[Dict[str, Any]]:
    lines = {id(c): i + 1 for i, c in enumerate(result.combinations)}
    ranked = [(c, gaia_statistics(c)) for c in ranking(result, opts)]
    ranked = [(c, s) for c, s in ranked if s is not None]
    by_norm = sorted(((s["normalized_accuracy"], k) for k, (_, s) in enumerate(ranked, 1)), reverse=True)
    norm_rank = {k: i + 1 for i, (_, k) in enumerate(by_norm)}
    evaluation = {"nfold": opts.nfold, "type": "nfoldcrossvalidation"}
    rows = []
    for k, (c, s) in enumerate(ranked, 1):
        ref = "%s:%d" % (CONFIGURATIONS, lines[id(c)])
        rows.append({"accuracy_rank": k, "accuracy": s["accuracy"], "accuracy_std": s["accuracy_std"],
                     "normalized_accuracy_rank": norm_rank[k], "normalized_accuracy": s["normalized_accuracy"],
                     "normalized_accuracy_std": s["normalized_accuracy_std"], "results_file": ref, "param_file": ref,
                     "kernel": c.kernel, "C": c.c, "preprocessing": c.preprocessing,
                     "balance_classes": bool(c.balance_classes), "type": "C-SVC", "classifier": "svm",
                     "gamma": c.gamma, "evaluation": evaluation})
    return rows


def _tsv_cell(value: Any) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    return text.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def report_tsv(result: TrainResult, opts: TrainOptions) -> str:
    out = ["\t".join(TSV_COLUMNS)]
    for row in report_rows(result, opts):
        out.append("\t".join(_tsv_cell(row[k]) for k in TSV_COLUMNS))
    return "\n".join(out) + "\n"


def configurations_jsonl(result: TrainResult, opts: TrainOptions) -> str:
    lines = []
    for c in result.combinations:
        entry = {"model": model_params(c), "evaluation": {"type": "nfoldcrossvalidation", "nfold": opts.nfold},
                 "status": c.status, "error": c.error, "correct": c.correct, "total": c.total,
                 "fold_correct": c.fold_correct, "fold_total": c.fold_total, "classes": list(result.classes),
                 "fold_confusion": c.fold_confusion}
        entry.update(gaia_statistics(c) or {})
        lines.append(json.dumps(entry, sort_keys=True))
    return "\n".join(lines) + "\n"


def results_html(result: TrainResult, class_name: str, source: str) -> str:
    """select_best_model's page: heading, accuracies and ConfusionMatrix.toHtml (names escaped)."""
    e = html.escape
    stats = gaia_statistics(result.best) or {}
    cm = result.best.confusion
    labels = sorted(range(len(result.classes)), key=lambda i: result.classes[i])
    total = sum(sum(row) for row in cm) or 1
    parts = ["<table><tr><th><h3>Predicted (%)</h3></th><td></td></tr><tr><td><table><tr><td></td>"]
    parts += ["<th>%s</th>" % e(result.classes[i]) for i in labels]
    parts.append("<td></td><th>Proportion</th></tr>")
    for a in labels:
        name = e(result.classes[a])
        n = sum(cm[a])
        parts.append("<tr><th>%s</th>" % name)
        for p in labels:
            count = cm[a][p]
            pct = count * 100.0 / n if n else 0.0
            cls = ("hi animate" if pct > 0 else "animate") if a == p else ("bad animate" if pct >= 10 else "animate")
            parts.append('<td class="%s">%.2f <span>%d %s (out of %d) classified as %s</span></td>'
                         % (cls, pct, count, name, n, e(result.classes[p])))
        parts.append("<th>%s</th><td>%.2f %%</td></tr>" % (name, 100.0 * n / total))
    parts.append("</table></td><th><h3>Actual (%)</h3></th></tr></table><br/>")
    style = ("body { font-family: sans-serif; font-size: small; } table { border: 1px solid black; "
             "border-collapse: collapse; font-size: small; } th { background-color: rgb(240, 240, 240); "
             "border: 1px solid black; text-align: left; padding: 5px; } td { border: 1px solid black; "
             "text-align: right; padding: 5px; } td.hi { background-color: #00ff33; } td.bad { "
             "background-color: #FF0000; color:#FFFFFF; } td.animate span { display:none } td.animate:hover span "
             "{display: block; position: absolute; padding: 5px; margin: 20px; z-index: 100; border: 1px solid "
             "black; color:black; background-color: AntiqueWhite; text-align: left;}")
    head = ("<h1>%s (%s)</h1>\nAccuracy: %r. Std: %r.\nNormalized accuracy: %r. Normalized std: %r.\n"
            % (e(class_name), e(source), stats.get("accuracy"), stats.get("accuracy_std"),
               stats.get("normalized_accuracy"), stats.get("normalized_accuracy_std")))
    return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>%s</title><style type="text/css">%s</style>'
            "</head>\n<body>%s%s</body></html>\n" % (e(class_name), style, head, "".join(parts)))


def _gaia_step(op: str, args: Dict[str, Any]) -> Dict[str, Any]:
    params: Dict[str, Any] = {}
    if "patterns" in args:
        params["descriptorNames"] = list(args["patterns"])
    if args.get("excepts"):
        params["except"] = list(args["excepts"])
    if args.get("independent"):
        params["independent"] = True
    step: Dict[str, Any] = {"transfo": op}
    if params:
        step["params"] = params
    return step


def project_document(opts: TrainOptions, class_name: str, template: str,
                     groundtruth: Optional[str] = None, filelist: Optional[str] = None) -> Dict[str, Any]:
    """The project actually used, in Gaia's project-file form (``read_project`` reads it back)."""
    sets = {}
    for name in opts.preprocessing_values:
        steps = opts.preprocessing_definition(name)
        if steps is None:
            steps = preprocessing_steps(name, template)
        sets[name] = [_gaia_step(op, args) for op, args in steps]
    grid: Dict[str, Any] = {"preprocessing": list(opts.preprocessing_values), "type": ["C-SVC"],
                            "kernel": list(opts.kernels), "C": list(opts.c_values), "gamma": list(opts.gamma_values)}
    if opts.balance_classes:
        grid["balanceClasses"] = list(opts.balance_classes)
    doc: Dict[str, Any] = {"templateVersion": template, "className": class_name, "seed": opts.seed,
                           "excludedDescriptors": list(opts.excluded), "failOnUnmatched": opts.fail_on_unmatched,
                           "preprocessing": sets, "classifiers": {"svm": [grid]},
                           "evaluations": {"nfoldcrossvalidation": [{"nfold": [opts.nfold]}]}}
    if groundtruth:
        doc["groundtruth"] = groundtruth
    if filelist:
        doc["filelist"] = filelist
    return doc


def project_yaml(doc: Dict[str, Any]) -> str:
    import yaml

    return ("# The project abrunnerctl train used (Gaia classification project form).\n"
            + yaml.safe_dump(doc, default_flow_style=False))


def param_yaml(result: TrainResult, opts: TrainOptions) -> str:
    import yaml

    return yaml.safe_dump({"evaluation": {"nfold": opts.nfold, "type": "nfoldcrossvalidation"},
                           "model": model_params(result.best)}, default_flow_style=False)


def write_reports(out_dir: str, result: TrainResult, opts: TrainOptions, class_name: str, history_name: str,
                  source: str, project: Dict[str, Any], write: Any) -> List[str]:
    """Write every report through ``write(path, text)``; returns the file names."""
    import os

    files: List[Tuple[str, str]] = [
        ("report.tsv", report_tsv(result, opts)),
        (CONFIGURATIONS, configurations_jsonl(result, opts)),
        (history_name + ".results.html", results_html(result, class_name, source)),
        (history_name + ".param", param_yaml(result, opts)),
        ("project.yaml", project_yaml(project)),
    ]
    for name, text in files:
        write(os.path.join(out_dir, name), text)
    return [name for name, _ in files]
