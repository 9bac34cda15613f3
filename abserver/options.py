"""Evaluation job options (AcousticBrainz's keys and defaults) and the parameter grid."""
from typing import Any, Dict, List, Tuple

PREPROCESSING = ["basic", "lowlevel", "nobands", "normalized", "gaussianized"]
DEFAULTS = {
    "c_values": [-5, -3, -1, 1, 3, 5, 7, 9, 11],
    "gamma_values": [3, 1, -1, -3, -5, -7, -9, -11],
    "preprocessing_values": list(PREPROCESSING),
    "filter_type": None,
    "normalize": False,
}
KERNELS = ["RBF", "poly"]
MAX_VALUES = 32  # per grid axis; AB's UI allowed 10
MAX_EXPONENT = 30


class OptionsError(ValueError):
    """Options that do not describe a valid grid."""


def _int_list(value: Any, key: str) -> List[int]:
    if not isinstance(value, list) or not value:
        raise OptionsError("option %r must be a non-empty list of integers (log2 exponents)" % key)
    if len(value) > MAX_VALUES:
        raise OptionsError("option %r has %d values; at most %d are allowed" % (key, len(value), MAX_VALUES))
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or abs(v) > MAX_EXPONENT:
            raise OptionsError("option %r: %r is not an integer exponent between -%d and %d"
                               % (key, v, MAX_EXPONENT, MAX_EXPONENT))
    if len(set(value)) != len(value):
        raise OptionsError("option %r lists a value twice" % key)
    return list(value)


def normalize_options(options: Any) -> Dict[str, Any]:
    """Full options with AB's defaults for absent keys; unknown keys are an error."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise OptionsError("options must be an object")
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise OptionsError("unknown option(s): %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(DEFAULTS))))
    out = dict(DEFAULTS)
    out.update(options)
    out["c_values"] = _int_list(out["c_values"], "c_values")
    out["gamma_values"] = _int_list(out["gamma_values"], "gamma_values")
    pre = out["preprocessing_values"]
    if not isinstance(pre, list) or not pre or any(p not in PREPROCESSING for p in pre) or len(set(pre)) != len(pre):
        raise OptionsError("option 'preprocessing_values' must be a non-empty list of distinct names from: %s"
                           % ", ".join(PREPROCESSING))
    if out["filter_type"] not in (None, "artist"):
        raise OptionsError("option 'filter_type' must be null or \"artist\"")
    if not isinstance(out["normalize"], bool):
        raise OptionsError("option 'normalize' must be true or false")
    return out


def grid(options: Dict[str, Any]) -> List[Tuple[str, str, int, int]]:
    """Every (preprocessing, kernel, C, gamma) combination of the job."""
    return [(p, k, c, g) for p in options["preprocessing_values"] for k in KERNELS
            for c in options["c_values"] for g in options["gamma_values"]]
