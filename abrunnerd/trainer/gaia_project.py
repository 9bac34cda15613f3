"""A Gaia classification project file (``classification_project_template_*.yaml`` form).

Read at the edge into :class:`Project`: the grid (``classifiers: svm:`` with
``preprocessing``, ``type``, ``kernel``, ``C``, ``gamma``, ``balanceClasses``), the
preprocessing sets with their transformations and parameters, ``excludedDescriptors``,
``failOnUnmatched``, ``evaluations: nfoldcrossvalidation: nfold``, ``seed`` and the
``groundtruth`` / ``filelist`` paths (relative to the project file's folder, where Gaia's
``run_tests`` runs).  What Gaia would do and we cannot reproduce is refused with one
line: another classifier than ``svm``, ``nu-SVC``, several grid blocks or fold counts,
per-configuration ``descriptorNames``, unknown transformations or parameters.
``datasetsDirectory``, ``resultsDirectory``, ``numberProcesses`` and ``clusterMode``
are Gaia's scratch and process settings: ignored (we write to ``--out`` and use ``--jobs``).
"""
import math
import os
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from abrunnerd.trainer.errors import DatasetError
from abrunnerd.trainer.input_files import MAX_PROJECT_BYTES, problem, read_mapping
from abrunnerd.trainer.options import MAX_EXPONENT

KERNEL_NAMES = {"rbf": "RBF", "radial": "RBF", "poly": "poly", "polynomial": "poly"}
# transfo -> parameters it accepts (Gaia's names)
TRANSFOS = {
    "remove": ("descriptorNames", "except"),
    "select": ("descriptorNames", "except"),
    "enumerate": ("descriptorNames",),
    "normalize": ("independent", "type"),
    "gaussianize": ("descriptorNames", "distributionSize"),
    "cleaner": (),
}
GAIA_DEFAULT_NFOLD = 10  # ClassificationTaskManager's default when a project has no evaluations
MAX_SETS = 100
MAX_STEPS = 100
MAX_VALUES = 1000


class Project(NamedTuple):
    """A project file, checked; ``options`` are :class:`TrainOptions` keyword arguments."""

    path: str
    class_name: Optional[str]
    groundtruth: Optional[str]  # absolute, or None when the file names none
    filelist: Optional[str]
    options: Dict[str, Any]
    template_version: Optional[str]


def _err(path: str, where: str, message: str) -> DatasetError:
    return problem("project %s: %s: %s" % (path, where, message))


def _list(value: Any, path: str, where: str) -> list:
    if value is None:
        raise _err(path, where, "is empty; give a list")
    out = list(value) if isinstance(value, list) else [value]
    if not out or len(out) > MAX_VALUES:
        raise _err(path, where, "needs 1 to %d values, has %d" % (MAX_VALUES, len(out)))
    return out


def _patterns(value: Any, path: str, where: str) -> Tuple[str, ...]:
    items = _list(value, path, where)
    if not all(isinstance(p, str) and p for p in items):
        raise _err(path, where, "descriptor name patterns must be non-empty strings, got %r" % (items,))
    return tuple(items)


def _step(raw: Any, path: str, where: str) -> Tuple[str, Tuple[Tuple[str, Any], ...]]:
    if not isinstance(raw, dict) or not isinstance(raw.get("transfo"), str):
        raise _err(path, where, "each step must be a mapping with 'transfo: <name>' and optional 'params'")
    unknown_keys = sorted(set(raw) - {"transfo", "params"})
    if unknown_keys:
        raise _err(path, where, "unknown key(s) %s in a step" % ", ".join(map(str, unknown_keys)))
    name = raw["transfo"].lower()
    if name not in TRANSFOS:
        raise _err(path, where, "unknown transformation %r (abrunnerd knows: %s)"
                   % (raw["transfo"], ", ".join(sorted(TRANSFOS))))
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise _err(path, where, "'params' of %s must be a mapping" % name)
    bad = sorted(str(k) for k in params if k not in TRANSFOS[name])
    if bad:
        raise _err(path, where, "%s does not take parameter(s) %s (it takes: %s)"
                   % (name, ", ".join(bad), ", ".join(TRANSFOS[name]) or "none"))
    args: Dict[str, Any] = {}
    if name in ("remove", "select", "enumerate", "gaussianize"):
        if "descriptorNames" not in params and name != "gaussianize":
            raise _err(path, where, "%s needs params: {descriptorNames: [...]}" % name)
        args["patterns"] = _patterns(params.get("descriptorNames", "*"), path, where + " descriptorNames")
        if params.get("except") is not None:
            args["excepts"] = _patterns(params["except"], path, where + " except")
        if name == "gaussianize" and params.get("distributionSize", 10000) != 10000:
            raise _err(path, where, "gaussianize distributionSize other than 10000 is not supported")
    elif name == "normalize":
        if params.get("type", "range") != "range":
            raise _err(path, where, "normalize type %r is not supported (only 'range')" % params["type"])
        independent = params.get("independent", False)
        if not isinstance(independent, bool):
            raise _err(path, where, "normalize independent must be true or false")
        if independent:
            args["independent"] = True
    return name, tuple(sorted(args.items()))


def _sets(raw: Any, path: str) -> Tuple[Tuple[str, tuple], ...]:
    if not isinstance(raw, dict) or not raw:
        raise _err(path, "preprocessing", "must be a mapping of set name: list of steps")
    if len(raw) > MAX_SETS:
        raise _err(path, "preprocessing", "more than %d sets" % MAX_SETS)
    out = []
    for name, steps in raw.items():
        if not isinstance(name, str) or not name:
            raise _err(path, "preprocessing", "set names must be text, got %r" % (name,))
        steps = steps or []
        if not isinstance(steps, list) or len(steps) > MAX_STEPS:
            raise _err(path, "preprocessing " + name, "must be a list of at most %d steps" % MAX_STEPS)
        out.append((name, tuple(_step(s, path, "preprocessing %s step %d" % (name, i + 1))
                                for i, s in enumerate(steps))))
    return tuple(out)


def _exponents(value: Any, path: str, where: str) -> Tuple[int, ...]:
    out = []
    for v in _list(value, path, where):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or int(v) != v or abs(v) > MAX_EXPONENT:
            raise _err(path, where, "%r is not an integer exponent in -%d..%d (the value used is 2**x)"
                       % (v, MAX_EXPONENT, MAX_EXPONENT))
        if int(v) not in out:
            out.append(int(v))
    return tuple(out)


def gaia_seed(value: Any, path: str) -> int:
    """The integer Python's ``random.seed`` derives from Gaia's seed (a float such as 1.0 or an int)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and (
            math.isnan(value) or math.isinf(value))):
        raise _err(path, "seed", "must be a number (Gaia's 'None' means the clock, which no run can repeat), "
                                 "got %r" % (value,))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return abs(value)
    return hash(value) % (1 << 64)  # random.seed(float) seeds with the float's hash


def _grid(raw: Any, sets: Sequence[str], path: str) -> Dict[str, Any]:
    if not isinstance(raw, dict) or not raw:
        raise _err(path, "classifiers", "must be a mapping with an 'svm' list")
    others = sorted(str(k) for k in raw if k != "svm")
    if others:
        raise _err(path, "classifiers", "only svm is supported, not %s; remove them" % ", ".join(others))
    blocks = raw["svm"]
    if not isinstance(blocks, list) or len(blocks) != 1 or not isinstance(blocks[0], dict):
        raise _err(path, "classifiers svm", "must be a list holding exactly one mapping of parameter lists")
    block = blocks[0]
    unknown = sorted(str(k) for k in block if k not in ("preprocessing", "type", "kernel", "C", "gamma",
                                                        "balanceClasses"))
    if unknown:
        raise _err(path, "classifiers svm", "unsupported parameter(s) %s" % ", ".join(unknown))
    where = "classifiers svm "
    prep = block.get("preprocessing", "*")
    prep = list(sets) if prep == "*" else _list(prep, path, where + "preprocessing")
    for p in prep:
        if p not in sets:
            raise _err(path, where + "preprocessing", "set %r is not defined under preprocessing (defined: %s)"
                       % (p, ", ".join(sets)))
    for t in _list(block.get("type", "C-SVC"), path, where + "type"):
        if not isinstance(t, str) or t.lower() != "c-svc":
            raise _err(path, where + "type", "only C-SVC is supported, not %r" % (t,))
    kernels = []
    for k in _list(block.get("kernel", "RBF"), path, where + "kernel"):
        name = KERNEL_NAMES.get(k.lower()) if isinstance(k, str) else None
        if name is None:
            raise _err(path, where + "kernel", "unknown kernel %r (poly or RBF)" % (k,))
        if name not in kernels:
            kernels.append(name)
    out = {"preprocessing_values": tuple(dict.fromkeys(prep)), "kernels": tuple(kernels),
           "c_values": _exponents(block.get("C", 1), path, where + "C"),
           "gamma_values": _exponents(block.get("gamma", 1), path, where + "gamma")}
    if "balanceClasses" in block:
        balance = _list(block["balanceClasses"], path, where + "balanceClasses")
        if not all(isinstance(b, bool) for b in balance):
            raise _err(path, where + "balanceClasses", "values must be True or False, got %r" % (balance,))
        out["balance_classes"] = tuple(dict.fromkeys(balance))
    return out


def _nfold(raw: Any, path: str) -> int:
    if raw is None:
        return GAIA_DEFAULT_NFOLD
    block = raw.get("nfoldcrossvalidation") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or set(raw) != {"nfoldcrossvalidation"} or not isinstance(block, list) \
            or len(block) != 1 or not isinstance(block[0], dict):
        raise _err(path, "evaluations", "must be 'nfoldcrossvalidation: [{nfold: [N]}]' with one entry")
    values = _list(block[0].get("nfold"), path, "evaluations nfold")
    if len(values) != 1 or isinstance(values[0], bool) or not isinstance(values[0], int) or not 2 <= values[0] <= 50:
        raise _err(path, "evaluations nfold", "must be one whole number of folds in 2..50, got %r" % (values,))
    return values[0]


def _path(value: Any, base: str, path: str, key: str) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise _err(path, key, "must be a file path")
    return os.path.normpath(os.path.join(base, value))


def read_project(path: str) -> Project:
    data = read_mapping(path, MAX_PROJECT_BYTES, "project")
    sets = _sets(data.get("preprocessing"), path)
    options = _grid(data.get("classifiers"), [n for n, _ in sets], path)
    options["preprocessing_sets"] = tuple((n, s) for n, s in sets if n in options["preprocessing_values"])
    options["nfold"] = _nfold(data.get("evaluations"), path)
    if "seed" in data:
        options["seed"] = gaia_seed(data["seed"], path)
    excluded = data.get("excludedDescriptors") or []
    options["excluded"] = _patterns(excluded, path, "excludedDescriptors") if excluded else ()
    fail = data.get("failOnUnmatched", False)
    if not isinstance(fail, bool):
        raise _err(path, "failOnUnmatched", "must be true or false")
    options["fail_on_unmatched"] = fail
    name = data.get("className")
    if name is not None and (not isinstance(name, str) or not name):
        raise _err(path, "className", "must be a name")
    version = data.get("templateVersion")
    base = os.path.dirname(os.path.abspath(path))
    return Project(path, name, _path(data.get("groundtruth"), base, path, "groundtruth"),
                   _path(data.get("filelist"), base, path, "filelist"), options,
                   None if version is None else str(version))
