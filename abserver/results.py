"""Validation of an uploaded result (docs/protocol.md, "Result JSON"): pure checks, 422 on failure.

This is where broken or malicious submissions stop, so every check names the field
and what was expected. The spot check (recomputing cells) lives in ``spotcheck.py``.
"""
import hashlib
import json
import math
from fractions import Fraction
from typing import Any, Dict, List, Optional, Tuple

from .errors import invalid
from .options import KERNELS
from .text import truncated_list

HISTORY_MAGIC = b"\x6a\xea\x72\x3d"
# Container items (map entries, list items, layout nodes) a model may hold: real Gaia and
# trainer histories hold ~14,000; this bounds parsing to ~20 MB and well under a second.
MODEL_MAX_ITEMS = 200000
TOP_KEYS = {"parameters", "accuracy", "confusion_matrix", "seed", "combinations", "dataset", "runner"}
REQUIRED = ("parameters", "accuracy", "confusion_matrix")
RUNNER_KEYS = {"name", "version", "python", "sklearn", "numpy"}
COMBINATION_KEYS = {"preprocessing", "kernel", "C", "gamma", "status", "accuracy",
                    "fold_correct", "fold_total", "error"}
DATASET_KEYS = {"n_recordings", "descriptors_dropped", "template"}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and not (isinstance(v, float) and not math.isfinite(v)))


def _object(value: Any, where: str, allowed: set) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid("bad_result", "%s must be an object" % where)
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise invalid("unknown_field", "unknown field(s) in %s: %s" % (where, truncated_list(unknown)))
    return value


def class_counts(snapshot: Dict[str, Any]) -> Dict[str, int]:
    """Recordings per class as trained: a recording in two classes counts for the later one (AB)."""
    owner: Dict[str, str] = {}
    for cls in snapshot["classes"]:
        for mbid in cls["recordings"]:
            owner[mbid] = cls["name"]
    counts = {cls["name"]: 0 for cls in snapshot["classes"]}
    for name in owner.values():
        counts[name] += 1
    return counts


def _check_parameters(params: Any, options: Dict[str, Any]) -> Tuple[Tuple[str, str, int, int], int]:
    _object(params, "parameters", {"model", "evaluation"})
    model = _object(params.get("model"), "parameters.model",
                    {"classifier", "preprocessing", "type", "kernel", "C", "gamma"})
    missing = sorted({"classifier", "preprocessing", "type", "kernel", "C", "gamma"} - set(model))
    if missing:
        raise invalid("bad_result", "parameters.model lacks %s" % ", ".join(missing))
    if model["classifier"] != "svm" or model["type"] != "C-SVC":
        raise invalid("outside_grid", "parameters.model must have classifier \"svm\" and type \"C-SVC\"")
    if model["kernel"] not in KERNELS:
        raise invalid("outside_grid", "parameters.model.kernel must be one of %s" % ", ".join(KERNELS))
    if model["preprocessing"] not in options["preprocessing_values"]:
        raise invalid("outside_grid", "parameters.model.preprocessing %r is not in the job's preprocessing_values"
                      % (model["preprocessing"],))
    if not _is_int(model["C"]) or model["C"] not in options["c_values"]:
        raise invalid("outside_grid", "parameters.model.C %r is not in the job's c_values" % (model["C"],))
    if not _is_int(model["gamma"]) or model["gamma"] not in options["gamma_values"]:
        raise invalid("outside_grid", "parameters.model.gamma %r is not in the job's gamma_values"
                      % (model["gamma"],))
    evaluation = _object(params.get("evaluation"), "parameters.evaluation", {"type", "nfold"})
    if evaluation.get("type") != "nfoldcrossvalidation" or not _is_int(evaluation.get("nfold")) \
            or not 2 <= evaluation["nfold"] <= 100:
        raise invalid("bad_result", "parameters.evaluation must be {\"type\": \"nfoldcrossvalidation\", "
                      "\"nfold\": an integer 2..100}")
    return (model["preprocessing"], model["kernel"], model["C"], model["gamma"]), evaluation["nfold"]


def _check_matrix(cm: Any, counts: Dict[str, int]) -> Tuple[int, int]:
    """(correct, total) of the confusion matrix; its classes must be the snapshot's."""
    if not isinstance(cm, dict):
        raise invalid("bad_result", "confusion_matrix must be an object {actual: {predicted: count}}")
    if set(cm) != set(counts):
        raise invalid("class_mismatch", "confusion_matrix classes %s differ from the dataset's %s"
                      % (sorted(cm), sorted(counts)))
    correct = total = 0
    for actual, row in cm.items():
        if not isinstance(row, dict):
            raise invalid("bad_result", "confusion_matrix[%r] must be an object" % actual)
        row_total = 0
        for predicted, count in row.items():
            if predicted not in counts:
                raise invalid("class_mismatch", "confusion_matrix[%r] predicts unknown class %r" % (actual, predicted))
            if not _is_int(count) or count < 0:
                raise invalid("bad_result", "confusion_matrix[%r][%r] must be a non-negative integer"
                              % (actual, predicted))
            row_total += count
            if predicted == actual:
                correct += count
        if row_total > counts[actual]:
            raise invalid("count_mismatch", "confusion_matrix row %r counts %d recordings; the class has %d"
                          % (actual, row_total, counts[actual]))
        total += row_total
    return correct, total


TRAINER_KERNEL_ORDER = ("poly", "RBF")  # the trainer's grid order (abrunnerd.trainer.options.KERNELS)


def grid_order(options: Dict[str, Any]) -> List[Tuple[str, str, int, int]]:
    """The job's grid in the trainer's order: preprocessing, kernel (poly first), C, gamma."""
    return [(p, k, c, g) for p in options["preprocessing_values"] for k in TRAINER_KERNEL_ORDER
            for c in options["c_values"] for g in options["gamma_values"]]


def _check_combinations(combos: Any, options: Dict[str, Any], n_recordings: int, nfold: int) -> Dict[tuple, Any]:
    """Each combination well-typed, in the grid, once; folds: ``nfold`` of them, the same
    partition for every combination (fold sizes equal), summing to the recordings evaluated.
    Returns ``{(preprocessing, kernel, C, gamma): (correct, total) or None when failed}``."""
    if not isinstance(combos, list):
        raise invalid("bad_result", "combinations must be a list")
    table: Dict[tuple, Any] = {}
    partition = None
    for i, combo in enumerate(combos):
        where = "combinations[%d]" % i
        _object(combo, where, COMBINATION_KEYS)
        key = (combo.get("preprocessing"), combo.get("kernel"), combo.get("C"), combo.get("gamma"))
        if (not isinstance(key[0], str) or key[0] not in options["preprocessing_values"]
                or not isinstance(key[1], str) or key[1] not in KERNELS
                or not _is_int(key[2]) or key[2] not in options["c_values"]
                or not _is_int(key[3]) or key[3] not in options["gamma_values"]):
            raise invalid("outside_grid", "%s %s is not a combination of the job's grid" % (where, _short(key)))
        if key in table:
            raise invalid("bad_result", "%s repeats combination %r" % (where, key))
        if combo.get("status") not in ("ok", "failed"):
            raise invalid("bad_result", "%s.status must be \"ok\" or \"failed\"" % where)
        error = combo.get("error")
        if error is not None and not (isinstance(error, str) and len(error) <= 4000):
            raise invalid("bad_result", "%s.error must be null or a string of at most 4000 characters" % where)
        if combo["status"] == "failed":
            table[key] = None
            continue
        correct, total = combo.get("fold_correct"), combo.get("fold_total")
        if (not isinstance(correct, list) or not isinstance(total, list) or len(correct) != len(total)
                or not correct or not all(_is_int(c) and _is_int(t) and 0 <= c <= t for c, t in zip(correct, total))):
            raise invalid("bad_result", "%s: fold_correct and fold_total must be equal-length lists of "
                          "integers with 0 <= correct <= total" % where)
        if len(total) != nfold:
            raise invalid("fold_count_mismatch", "%s has %d folds; parameters.evaluation.nfold is %d"
                          % (where, len(total), nfold))
        if sum(total) != n_recordings:
            raise invalid("count_mismatch", "%s evaluates %d recordings, the result says %d"
                          % (where, sum(total), n_recordings))
        if partition is None:
            partition = total
        elif total != partition:
            raise invalid("fold_partition_mismatch", "%s has fold sizes %s, other combinations %s; every "
                          "combination is evaluated on the same folds" % (where, _short(total), _short(partition)))
        if sum(total) == 0:
            raise invalid("count_mismatch", "%s evaluates no recordings" % where)
        acc = combo.get("accuracy")
        if not _is_number(acc) or abs(acc - 100.0 * sum(correct) / sum(total)) > 0.01:
            raise invalid("accuracy_mismatch", "%s.accuracy %s does not match its folds (%d of %d correct)"
                          % (where, _short(acc), sum(correct), sum(total)))
        table[key] = (sum(correct), sum(total))
    missing = [k for k in grid_order(options) if k not in table]
    if missing:
        raise invalid("incomplete_grid", "combinations lack %d of the job's %d configurations, e.g. %r; list "
                      "every one (failed ones with status \"failed\")" % (len(missing), len(table) + len(missing),
                                                                           missing[0]))
    return table


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def best_of_table(table: Dict[tuple, Any], options: Dict[str, Any]) -> Optional[tuple]:
    """The documented tie rule (docs/trainer.md, abrunnerd.trainer.train.choose_best): highest
    pooled accuracy; among ties the best mean accuracy of the trained grid neighbours (C and
    gamma one step away in sorted order, same preprocessing and kernel); then grid order."""
    order = grid_order(options)
    ok = [k for k in order if table.get(k) and table[k][1]]
    if not ok:
        return None
    top = max(ok, key=lambda k: Fraction(table[k][0], table[k][1]))
    top_value = Fraction(table[top][0], table[top][1])
    tied = [k for k in ok if Fraction(table[k][0], table[k][1]) == top_value]
    cs, gs = sorted(options["c_values"]), sorted(options["gamma_values"])

    def accuracy(key):
        correct, total = table[key]
        return 100.0 * correct / total  # as the trainer computes Combination.accuracy

    def neighbourhood(key) -> float:
        ci, gi = cs.index(key[2]), gs.index(key[3])
        accs = []
        for a in range(max(0, ci - 1), min(len(cs), ci + 2)):
            for b in range(max(0, gi - 1), min(len(gs), gi + 2)):
                other = (key[0], key[1], cs[a], gs[b])
                if (a, b) != (ci, gi) and table.get(other) and table[other][1]:
                    accs.append(accuracy(other))
        return sum(accs) / len(accs) if accs else 0.0

    position = {k: i for i, k in enumerate(order)}
    return max(tied, key=lambda k: (neighbourhood(k), -position[k]))


def validate_result(result: Any, snapshot: Dict[str, Any], options: Dict[str, Any], seed: int,
                    model: bytes) -> None:
    """Raise 422 ApiError unless ``result`` and ``model`` are a plausible answer to the job."""
    _object(result, "result", TOP_KEYS)
    missing = [k for k in REQUIRED if k not in result]
    if missing:
        raise invalid("bad_result", "result lacks %s" % ", ".join(missing))
    best, nfold = _check_parameters(result["parameters"], options)
    accuracy = result["accuracy"]
    if not _is_number(accuracy) or not 0 <= accuracy <= 100:
        raise invalid("bad_result", "accuracy must be a number between 0 and 100 (percent)")
    counts = class_counts(snapshot)
    correct, total = _check_matrix(result["confusion_matrix"], counts)
    n_recordings = sum(counts.values())
    if "dataset" in result:
        ds = _object(result["dataset"], "dataset", DATASET_KEYS)
        if "n_recordings" in ds:
            if not _is_int(ds["n_recordings"]) or not 0 < ds["n_recordings"] <= n_recordings:
                raise invalid("count_mismatch", "dataset.n_recordings must be 1..%d" % n_recordings)
            n_recordings = ds["n_recordings"]
        if "descriptors_dropped" in ds and not (_is_int(ds["descriptors_dropped"]) and ds["descriptors_dropped"] >= 0):
            raise invalid("bad_result", "dataset.descriptors_dropped must be a non-negative integer")
        if "template" in ds and not isinstance(ds["template"], str):
            raise invalid("bad_result", "dataset.template must be a string")
    if total != n_recordings:
        raise invalid("count_mismatch", "confusion_matrix counts %d recordings; %d were evaluated"
                      % (total, n_recordings))
    if abs(accuracy - 100.0 * correct / total) > 0.01:
        raise invalid("accuracy_mismatch", "accuracy %r does not match the confusion matrix (%d of %d = %.2f)"
                      % (accuracy, correct, total, 100.0 * correct / total))
    if "seed" in result and (not _is_int(result["seed"]) or result["seed"] != seed):
        raise invalid("bad_result", "seed %s must be the job's seed, the integer %d" % (_short(result["seed"]), seed))
    if "combinations" in result:
        table = _check_combinations(result["combinations"], options, n_recordings, nfold)
        named_best = best_of_table(table, options)
        if named_best is None:
            raise invalid("best_mismatch", "no combination succeeded, yet parameters.model names one")
        if best != named_best:
            raise invalid("best_mismatch", "parameters.model names %r, but the best of the combinations by the "
                          "documented rule (highest accuracy; ties: best neighbours, then grid order) is %r"
                          % (best, named_best))
        correct_best, total_best = table[best]
        if abs(accuracy - 100.0 * correct_best / total_best) > 0.01:
            raise invalid("accuracy_mismatch", "the best combination's accuracy %.2f differs from accuracy %s"
                          % (100.0 * correct_best / total_best, _short(accuracy)))
    if "runner" in result:
        runner = _object(result["runner"], "runner", RUNNER_KEYS)
        if not all(isinstance(v, str) and len(v) <= 255 for v in runner.values()):
            raise invalid("bad_result", "runner fields must be strings of at most 255 characters")
    if not model.startswith(HISTORY_MAGIC):
        raise invalid("bad_model", "model is not a Gaia .history file (it must start with 6A EA 72 3D)")
    check_model(model, sorted(counts), best)


def check_model(model: bytes, class_names: List[str], best: Optional[Tuple[str, str, int, int]] = None) -> None:
    """Parse the history (bounded, abrunnerd.gaia.history) and match its classes to the dataset's.

    The parser needs numpy, imported only here; without it only the magic was checked.
    """
    try:
        from abrunnerd.gaia.history import HistoryError, loads_history
    except ImportError:
        return
    try:
        steps = loads_history(model, max_items=MODEL_MAX_ITEMS)
    except HistoryError as exc:
        raise invalid("bad_model", "model is not a valid Gaia history: %s" % exc)
    svm = [s for s in steps if s.analyzer == "svmtrain"]
    if not svm:
        raise invalid("bad_model", "model history has no svmtrain step")
    mapping = svm[-1].params.get("classMapping")
    if not isinstance(mapping, list) or not all(isinstance(m, str) for m in mapping):
        raise invalid("bad_model", "model classMapping must be a list of class names (strings)")
    if sorted(mapping) != class_names:
        raise invalid("bad_model", "model classes %s differ from the dataset's %s"
                      % (truncated_list(sorted(mapping)), truncated_list(class_names)))
    if best is not None:
        _check_model_parameters(steps, svm[-1], best)


def model_preprocessing(steps) -> Optional[str]:
    """The preprocessing set a trainer-made history applied, from its steps between the
    document merge and the final chain (select, cleaner, normalize, addfield, svmtrain, select)."""
    analyzers = [s.analyzer for s in steps]
    try:
        first = analyzers.index("enumerate") + 1
        last = max(i for i, a in enumerate(analyzers) if a == "select" and i + 1 < len(analyzers)
                   and analyzers[i + 1] == "cleaner")
    except ValueError:
        return None
    extra = steps[first:last]
    names = tuple(s.analyzer for s in extra)
    if names == ():
        return "basic"
    if names == ("normalize",):
        return "normalized"
    if names == ("normalize", "gaussianize"):
        return "gaussianized"
    if names == ("remove",):
        return "nobands"
    if names == ("select",):
        patterns = extra[0].analyzer_params.get("descriptorNames")
        patterns = [patterns] if isinstance(patterns, str) else patterns
        if patterns == ["lowlevel*"]:
            return "lowlevel"
        if patterns == ["lowlevel.mfcc*"]:
            return "mfcc"
    return None


def _check_model_parameters(steps, svm, best: Tuple[str, str, int, int]) -> None:
    """The model is the named best configuration: kernel, C, gamma and preprocessing."""
    preprocessing, kernel, c, gamma = best
    params = svm.analyzer_params
    got_kernel, got_c, got_gamma = params.get("kernel"), params.get("c"), params.get("gamma")
    if not isinstance(got_kernel, str) or got_kernel.lower() != kernel.lower():
        raise invalid("model_mismatch", "the model's kernel %s is not the named best's %s"
                      % (_short(got_kernel), kernel))
    for name, got, exponent in (("C", got_c, c), ("gamma", got_gamma, gamma)):
        if isinstance(got, bool) or not isinstance(got, (int, float)) or not math.isfinite(got) or got <= 0 \
                or abs(math.log2(got) - exponent) > 1e-6:
            raise invalid("model_mismatch", "the model's %s %s is not 2^%d, the named best's" % (name, _short(got),
                                                                                                exponent))
    found = model_preprocessing(steps)
    if found != preprocessing:
        raise invalid("model_mismatch", "the model's steps apply preprocessing %s, the named best is %r"
                      % (found or "that is none of the known sets", preprocessing))


def upload_digest(result: Dict[str, Any], model: bytes) -> str:
    """Identity of an upload, for idempotent replays: canonical JSON + model bytes."""
    h = hashlib.sha256(json.dumps(result, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    h.update(b"\0")
    h.update(model)
    return h.hexdigest()


def ok_cells(result: Dict[str, Any]) -> List[Tuple[Dict[str, Any], int, int, int]]:
    """Every (combination params, fold index, correct, total) the result claims."""
    cells = []
    for combo in result.get("combinations") or []:
        if combo.get("status") != "ok":
            continue
        params = {k: combo[k] for k in ("preprocessing", "kernel", "C", "gamma")}
        for fold, (c, t) in enumerate(zip(combo["fold_correct"], combo["fold_total"])):
            cells.append((params, fold, c, t))
    return cells
