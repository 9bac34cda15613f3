"""Pure views of a stored result for the pages: grid landscape, ranking, class metrics.

Inputs are the validated result JSON (docs/protocol.md, "Result JSON"), the job's
options and its snapshot's classes; nothing here touches the database or Flask.
"""
import re
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ..text import sanitize

TIE_BAND = 1.0  # percentage points: Gaia's model selection treats configurations this close as ties

Key = Tuple[str, str, int, int]  # preprocessing, kernel, C exponent, gamma exponent


class Panel(NamedTuple):
    """One C × γ accuracy surface (one preprocessing × kernel)."""

    preprocessing: str
    kernel: str
    c_values: List[int]  # rows
    gamma_values: List[int]  # columns
    accuracy: List[List[Optional[float]]]  # [row][column]; None = failed or not reported
    best: Optional[Tuple[int, int]]  # (row, column) of the job's best configuration
    ties: List[Tuple[int, int]]  # cells within TIE_BAND of the best accuracy (best included)


def best_key(result: Dict[str, Any]) -> Key:
    m = result["parameters"]["model"]
    return (m["preprocessing"], m["kernel"], m["C"], m["gamma"])


def _ok_accuracies(result: Dict[str, Any]) -> Dict[Key, float]:
    out = {}
    for combo in result.get("combinations") or []:
        if combo.get("status") == "ok":
            out[(combo["preprocessing"], combo["kernel"], combo["C"], combo["gamma"])] = float(combo["accuracy"])
    return out


def landscape(result: Dict[str, Any], options: Dict[str, Any], kernels: Sequence[str]) -> List[Panel]:
    """A panel per preprocessing × kernel that has any reported configuration, in job order."""
    acc = _ok_accuracies(result)
    best = best_key(result)
    top = float(result["accuracy"])
    reported = {(k[0], k[1]) for k in acc}
    panels = []
    c_values = sorted(options["c_values"])
    g_values = sorted(options["gamma_values"])
    for pre in options["preprocessing_values"]:
        for kernel in kernels:
            if (pre, kernel) not in reported:
                continue
            grid = [[acc.get((pre, kernel, c, g)) for g in g_values] for c in c_values]
            ties = [(i, j) for i, row in enumerate(grid) for j, v in enumerate(row)
                    if v is not None and v >= top - TIE_BAND]
            cell = None
            if (pre, kernel) == best[:2] and best[2] in c_values and best[3] in g_values:
                cell = (c_values.index(best[2]), g_values.index(best[3]))
            panels.append(Panel(pre, kernel, c_values, g_values, grid, cell, ties))
    return panels


def ranking(result: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every configuration, best first (accuracy descending, then the job's grid order); failed last."""
    combos = list(enumerate(result.get("combinations") or []))
    ok = [(i, c) for i, c in combos if c.get("status") == "ok"]
    failed = [(i, c) for i, c in combos if c.get("status") != "ok"]
    ok.sort(key=lambda ic: (-float(ic[1]["accuracy"]), ic[0]))
    rows = []
    for rank, (_, c) in enumerate(ok + failed, 1):
        rows.append({"rank": rank if c.get("status") == "ok" else None, "preprocessing": c["preprocessing"],
                     "kernel": c["kernel"], "C": c["C"], "gamma": c["gamma"], "status": c["status"],
                     "accuracy": c.get("accuracy") if c.get("status") == "ok" else None,
                     "correct": sum(c.get("fold_correct") or []) if c.get("status") == "ok" else None,
                     "total": sum(c.get("fold_total") or []) if c.get("status") == "ok" else None,
                     "error": c.get("error")})
    return rows


def _cell(value: Any) -> str:
    """A TSV field: no tabs or line breaks can split a row or column."""
    if value is None:
        return ""
    return " ".join(str(value).split())


def ranking_tsv(result: Dict[str, Any]) -> str:
    head = ["rank", "preprocessing", "kernel", "C_log2", "gamma_log2", "accuracy_percent", "correct", "total",
            "status", "error"]
    lines = ["\t".join(head)]
    for r in ranking(result):
        acc = "%.4f" % r["accuracy"] if r["accuracy"] is not None else None
        lines.append("\t".join(_cell(v) for v in (r["rank"], r["preprocessing"], r["kernel"], r["C"], r["gamma"],
                                                  acc, r["correct"], r["total"], r["status"], r["error"])))
    return "\n".join(lines) + "\n"


class ClassRow(NamedTuple):
    name: str
    counts: List[int]  # predicted as each class, in ``classes`` order
    total: int
    recall: Optional[float]  # percent
    precision: Optional[float]  # percent


def confusion(matrix: Dict[str, Dict[str, int]], classes: Sequence[str]) -> List[ClassRow]:
    """Rows of the confusion matrix in ``classes`` order with per-class recall and precision."""
    counts = [[int((matrix.get(a) or {}).get(p, 0)) for p in classes] for a in classes]
    col_totals = [sum(row[j] for row in counts) for j in range(len(classes))]
    rows = []
    for i, name in enumerate(classes):
        total = sum(counts[i])
        rows.append(ClassRow(name, counts[i], total,
                             100.0 * counts[i][i] / total if total else None,
                             100.0 * counts[i][i] / col_totals[i] if col_totals[i] else None))
    return rows


def class_of(snapshot_classes: List[Dict[str, Any]]) -> Dict[str, str]:
    """Recording → class as trained (a recording in two classes counts for the later one, as AB)."""
    out = {}
    for cls in snapshot_classes:
        for mbid in cls["recordings"]:
            out[mbid] = cls["name"]
    return out


def misclassified(predictions: Dict[str, Dict[str, Any]], truth: Dict[str, str]) -> List[Dict[str, Any]]:
    """Recordings the final model assigns to another class than their own, most confident first."""
    out = []
    for mbid, pred in predictions.items():
        actual = truth.get(mbid)
        if actual is None or pred.get("value") == actual:
            continue
        probs = pred.get("all") or {}
        out.append({"mbid": mbid, "actual": actual, "predicted": pred.get("value"),
                    "probability": probs.get(pred.get("value")), "actual_probability": probs.get(actual)})
    out.sort(key=lambda r: (-(r["probability"] or 0.0), r["mbid"]))
    return out


def exp2(exponent: int) -> str:
    """``2^-3`` written with superscripts (2⁻³), as AcousticBrainz's UI showed grid values."""
    sup = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    return "2" + str(exponent).translate(sup)


_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")


def printable(text: str) -> str:
    """``text`` safe in an SVG or HTML document: control and bidi-override characters made
    visible (``\\x1b``), lone surrogates (which JSON can carry) replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", sanitize(text, limit=len(text)))
