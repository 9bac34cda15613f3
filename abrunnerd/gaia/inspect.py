"""A readable summary of a Gaia history: what each transformation does, on what layout.

``summarize`` returns plain JSON-able data (``abrunnerctl inspect-history --json``);
``render_text`` turns it into the human form.  Long descriptor lists are summarised by
count with a few examples, so the output of a 500-descriptor chain stays readable.
"""
from typing import Any, Dict, List

from abrunnerd.gaia.chain import FIXED, ENUM, REAL, STRING, Float32Blob, Layout, Step
from abrunnerd.gaia.libsvm_text import parse_model_header

TYPE_NAMES = {REAL: "real", STRING: "string", ENUM: "enum"}
EXAMPLES = 3


def layout_summary(layout: Layout) -> Dict[str, Any]:
    counts = {}  # type: Dict[str, int]
    for d in layout.descriptors:
        key = "%s_%s" % (TYPE_NAMES[d.type], "fl" if d.length_type == FIXED else "vl")
        counts[key] = counts.get(key, 0) + 1
    return {"descriptors": len(layout.descriptors),
            "fixed_dimensions": sum(d.size for d in layout.descriptors if d.length_type == FIXED),
            "variable_length": sum(1 for d in layout.descriptors if d.length_type != FIXED),
            "by_type": counts, "enum_maps": {k: len(v) for k, v in sorted(layout.enum_maps.items())}}


def _short(value: Any) -> Any:
    """A parameter value made JSON-able and short: long lists become count + examples."""
    if isinstance(value, Float32Blob):
        return {"float32_values": len(value) // 4}
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": len(value)}
    if isinstance(value, dict):
        if len(value) > 4 * EXAMPLES:
            keys = sorted(value)
            return {"entries": len(value), "first": keys[:EXAMPLES]}
        return {k: _short(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        if len(value) > 2 * EXAMPLES:
            return {"items": len(value), "first": [_short(v) for v in value[:EXAMPLES]]}
        return [_short(v) for v in value]
    return value


def svm_summary(params: Dict[str, Any], analyzer_params: Dict[str, Any]) -> Dict[str, Any]:
    model = params.get("modelData", b"")
    header = parse_model_header(model) if isinstance(model, (bytes, bytearray)) else {}
    out = {"class_name": params.get("className"), "classes": list(params.get("classMapping", [])),
           "probability": params.get("probability"), "features": len(params.get("descriptorNames", [])),
           "feature_dimensions": int((header.get("n_features") or ["0"])[0]),
           "kernel": (header.get("kernel_type") or ["?"])[0],
           "support_vectors": int((header.get("total_sv") or ["0"])[0]),
           "support_vectors_per_class": [int(n) for n in header.get("nr_sv", [])],
           "model_text_bytes": len(model) if isinstance(model, (bytes, bytearray)) else None}
    for key in ("gamma", "degree", "coef0"):
        if key in header:
            out[key] = float(header[key][0])
    for key in ("c", "C", "type"):
        if key in analyzer_params:
            out[key.lower() if key != "type" else "svm_type"] = analyzer_params[key]
    return out


def summarize(steps: List[Step]) -> Dict[str, Any]:
    transformations = []
    for i, step in enumerate(steps):
        entry = {"index": i, "analyzer": step.analyzer, "applier": step.applier,
                 "input_layout": layout_summary(step.input_layout),
                 "analyzer_params": _short(step.analyzer_params), "params": {},
                 "info_entries": len(step.info)}  # type: Dict[str, Any]
        if step.applier == "svmpredict":
            entry["svm"] = svm_summary(step.params, step.analyzer_params)
            entry["params"] = _short({k: v for k, v in step.params.items() if k != "modelData"})
        else:
            entry["params"] = _short(step.params)
        transformations.append(entry)
    svms = [t["svm"] for t in transformations if "svm" in t]
    return {"transformations": transformations, "count": len(steps), "svm": svms[0] if svms else None}


def _fmt(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"items", "first"}:
        return "%d items (%s, ...)" % (value["items"], ", ".join(_fmt(v) for v in value["first"]))
    if isinstance(value, dict) and set(value) == {"entries", "first"}:
        return "%d entries (%s, ...)" % (value["entries"], ", ".join(value["first"]))
    if isinstance(value, dict) and set(value) == {"float32_values"}:
        return "%d float32" % value["float32_values"]
    if isinstance(value, dict) and set(value) == {"bytes"}:
        return "%d bytes" % value["bytes"]
    if isinstance(value, dict):
        return "{" + ", ".join("%s: %s" % (k, _fmt(v)) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def render_text(summary: Dict[str, Any]) -> str:
    lines = ["Gaia history: %d transformations" % summary["count"]]
    for t in summary["transformations"]:
        lay = t["input_layout"]
        lines.append("%2d. %s -> %s   (input: %d descriptors, %d fixed dimensions, %d variable-length%s)" % (
            t["index"], t["analyzer"], t["applier"], lay["descriptors"], lay["fixed_dimensions"],
            lay["variable_length"], ", %d enum maps" % len(lay["enum_maps"]) if lay["enum_maps"] else ""))
        if t["analyzer_params"]:
            lines.append("      analyzer: " + _fmt(t["analyzer_params"]))
        for key, value in t["params"].items():
            lines.append("      %s: %s" % (key, _fmt(value)))
        if "svm" in t:
            s = t["svm"]
            extra = "".join(", %s %s" % (k, s[k]) for k in ("c", "gamma", "degree", "coef0") if k in s)
            lines.append("      SVM: %s kernel%s; %d classes %s; %d support vectors %s; %d feature descriptors "
                         "(%d dimensions); probability %s" % (
                             s["kernel"], extra, len(s["classes"]), s["classes"], s["support_vectors"],
                             s["support_vectors_per_class"], s["features"], s["feature_dimensions"],
                             s["probability"]))
    return "\n".join(lines) + "\n"
