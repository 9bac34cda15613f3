"""Apply a Gaia classification history to low-level documents, in numpy (no Gaia, no Essentia).

:func:`load_model` reads a ``.history`` (ours, AcousticBrainz's, Gaia's own scripts') and
*compiles* its chain once: it walks the transformations with the layout each applier
would produce, checks it against the layout the next one was fitted on (Gaia's
``checkLayout``), and keeps only the arithmetic that reaches the SVM's features.  A chain
Essentia could never apply to any document (unknown applier, layouts that do not chain,
a String feature, an SVM without probability estimates where it asks for them ...) is a
:class:`ModelError` naming the file, the transformation number and the applier.

:meth:`Model.predict` then applies the chain to many documents at once: each document is
read like Essentia's ``GaiaTransform`` builds its point (``poolToPoint``), the numeric
steps run on whole columns, and the SVM predicts the batch with two matrix products.  A
document that cannot be mapped (a descriptor missing, of the wrong kind or length, a
non-finite SVM feature) gets its own :class:`DocumentError`; the rest of the batch goes on.

Semantics follow one fresh ``GaiaTransform`` per document (gaia-transform-output.md §5):
fixed lengths come from training, strings never seen in training get the next free enum
code in order of appearance within the document.  Appliers: see :data:`SUPPORTED`.
"""
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from abrunnerd.gaia.chain import ENUM, FIXED, REAL, STRING, Layout, Step, SvmModel
from abrunnerd.gaia.numeric import distribute_block, dot_product
from abrunnerd.gaia.svm import SvmModelError, SvmPredictor, parse_svm_model

# Appliers we implement, and those whose input layout Gaia checks (or rebuilds from).
SUPPORTED = ("removedesc", "selectdesc", "fixlengthapplier", "enumerateapplier", "dotproduct", "distribute",
             "addfieldapplier", "renameapplier", "svmpredict")
CHECKED = ("removedesc", "selectdesc", "fixlengthapplier", "enumerateapplier", "dotproduct", "distribute",
           "addfieldapplier", "renameapplier")
LAYOUT_ONLY = ("removedesc", "selectdesc", "addfieldapplier", "renameapplier")
KNOWN_UNSUPPORTED = {"matmult": "PCA/RCA projections", "merge": "merged histories",
                     "mergeregionapplier": "merged regions", "extractapplier": "extracted dimensions"}
MAX_CLASS_NAME = 256


class ModelError(ValueError):
    """The history cannot be applied by abrunnerd (or by Essentia) to any document."""


class DocumentError(ValueError):
    """One document cannot be mapped through a model; the message names the descriptor."""


class _Desc(object):
    """A descriptor of the layout flowing through the chain (``size`` is None while VL)."""

    __slots__ = ("type", "fixed", "size", "origin")

    def __init__(self, dtype: int, fixed: bool, size: Optional[int], origin: Optional[str]) -> None:
        self.type, self.fixed, self.size, self.origin = dtype, fixed, size, origin

    def copy(self) -> "_Desc":
        return _Desc(self.type, self.fixed, self.size, self.origin)


class InputSpec(NamedTuple):
    """One descriptor of the first layout: what ``poolToPoint`` reads from a document."""
    name: str  # full name, leading dot
    path: Tuple[str, ...]  # keys into the JSON document
    kind: int  # REAL or STRING (Enum descriptors are read as strings)
    length: int  # required number of values, -1 = any
    live: bool  # its values reach the SVM
    skipped: bool  # .metadata.version* strings: Essentia does not read them


class Prediction(NamedTuple):
    value: str
    probability: Optional[float]  # None for a model without probability estimates
    all: Optional[Dict[str, float]]

    def as_json(self) -> Dict[str, Any]:
        if self.all is None:
            return {"value": self.value}
        return {"value": self.value, "probability": self.probability, "all": dict(self.all)}


def _full(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name.strip("."):
        raise ModelError("%s: descriptor name %r is not a string" % (where, name))
    return name if name.startswith(".") else "." + name


def _names(params: Dict[str, Any], key: str, where: str, required: bool = True) -> List[str]:
    value = params.get(key)
    if value is None:
        if required:
            raise ModelError("%s: parameter %r is missing" % (where, key))
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ModelError("%s: parameter %r is not a list of names" % (where, key))
    return [_full(v, where) for v in value]


def _layout_signature(descs: Dict[str, _Desc]) -> Dict[str, Tuple[int, bool, Optional[int]]]:
    return {n: (d.type, d.fixed, d.size if d.fixed else None) for n, d in descs.items()}


def _stored_signature(layout: Layout) -> Dict[str, Tuple[int, bool, Optional[int]]]:
    return {d.name: (d.type, d.length_type == FIXED, d.size if d.length_type == FIXED else None)
            for d in layout.descriptors}


class _Compiler(object):
    """Walks a chain once; produces the input specs, the value operations and the SVM."""

    def __init__(self, steps: Sequence[Step], source: str) -> None:
        if not steps:
            raise ModelError("%s: the history has no transformations" % source)
        self.steps = steps
        self.source = source
        first = steps[0].input_layout
        self.state = {}  # type: Dict[str, _Desc]
        self.lengths = {}  # type: Dict[str, int]  # origin -> required length
        self.first_maps = dict(first.enum_maps)
        for d in first.descriptors:
            fixed = d.length_type == FIXED
            self.state[d.name] = _Desc(d.type, fixed, d.size if fixed else None, d.name)
            if fixed:
                self.lengths[d.name] = d.size
        self.first = list(first.descriptors)
        self.ops = []  # type: List[tuple]
        self.svm = None  # type: Optional[dict]

    def fail(self, k: int, message: str) -> ModelError:
        return ModelError("%s: transformation %d (%s): %s" % (self.source, k, self.steps[k].applier, message))

    def run(self) -> None:
        for k, step in enumerate(self.steps):
            applier = step.applier.lower()
            if applier not in SUPPORTED:
                what = KNOWN_UNSUPPORTED.get(applier)
                raise self.fail(k, "applier %r is not supported by abrunnerd's predictor%s; supported: %s"
                                % (step.applier, " (%s)" % what if what else "", ", ".join(SUPPORTED)))
            if self.svm is not None and applier not in LAYOUT_ONLY:
                raise self.fail(k, "only removedesc/selectdesc/addfieldapplier/renameapplier are supported "
                                   "after svmpredict")
            if applier in CHECKED:
                self.check_layout(k, step.input_layout)
            getattr(self, "do_" + applier)(k, step, step.params if isinstance(step.params, dict) else {})
        if self.svm is None:
            raise ModelError("%s: the history has no svmpredict transformation, so it is not a classifier"
                             % self.source)
        name = "." + self.svm["class_name"]
        for needed in [name] + ([name + "Probability"] if self.svm["probability"] else []):
            if needed not in self.state:
                raise ModelError("%s: the chain removes %s after svmpredict, so Essentia has no result to "
                                 "report" % (self.source, needed[1:]))

    def check_layout(self, k: int, stored: Layout) -> None:
        ours, theirs = _layout_signature(self.state), _stored_signature(stored)
        if ours != theirs:
            diff = sorted(n for n in set(ours) | set(theirs) if ours.get(n) != theirs.get(n))
            raise self.fail(k, "its layout differs from what transformation %d produces (Gaia: \"Cannot apply "
                               "transfo ... layout is different\"): %s%s"
                            % (k - 1, ", ".join(n[1:] for n in diff[:5]),
                               " and %d more" % (len(diff) - 5) if len(diff) > 5 else ""))

    def translate(self, stored: Layout) -> None:
        """Appliers that rebuild the point recode enum values with their stored maps (history §6.2)."""
        maps = {d.origin: list(stored.enum_maps.get(n, [])) for n, d in self.state.items()
                if d.type == ENUM and d.origin is not None}
        if maps:
            self.ops.append(("maps", maps))

    def need(self, k: int, name: str) -> _Desc:
        desc = self.state.get(name)
        if desc is None:
            raise self.fail(k, "Couldn't find node with name %s (the layout has no such descriptor)" % name[1:])
        return desc

    def do_removedesc(self, k: int, step: Step, params: dict) -> None:
        for name in _names(params, "descriptorNames", self.where(k)):
            self.need(k, name)
            del self.state[name]
        self.translate(step.input_layout)

    def do_selectdesc(self, k: int, step: Step, params: dict) -> None:
        keep = set(_names(params, "descriptorNames", self.where(k)))
        self.state = {n: d for n, d in self.state.items() if n in keep}
        self.translate(step.input_layout)

    def where(self, k: int) -> str:
        return "%s: transformation %d (%s)" % (self.source, k, self.steps[k].applier)

    def do_fixlengthapplier(self, k: int, step: Step, params: dict) -> None:
        following = self.steps[k + 1].input_layout if k + 1 < len(self.steps) else None
        sizes = {d.name: d.size for d in following.descriptors if d.length_type == FIXED} if following else {}
        for name in _names(params, "descriptorNames", self.where(k)):
            desc = self.need(k, name)
            if desc.fixed:
                continue
            size = sizes.get(name)
            if size is None:
                raise self.fail(k, "cannot tell the fixed length of %s: the next transformation's layout does not "
                                   "list it as fixed-length" % name[1:])
            if desc.origin is None:
                default = 1 if desc.type != REAL else 0
                if size != default:
                    raise self.fail(k, "%s is an added field of length %d, fixed at %d" % (name[1:], default, size))
            elif self.lengths.setdefault(desc.origin, size) != size:
                raise self.fail(k, "%s is fixed at %d and at %d" % (name[1:], self.lengths[desc.origin], size))
            desc.fixed, desc.size = True, size

    def do_enumerateapplier(self, k: int, step: Step, params: dict) -> None:
        names = _names(params, "descriptorNames", self.where(k))
        self.translate(step.input_layout)  # the descriptors enumerated before keep their stored maps
        fresh = {}
        for name in names:
            desc = self.need(k, name)
            if desc.type != STRING:
                raise self.fail(k, "%s is not a String descriptor" % name[1:])
            desc.type = ENUM
            if desc.origin is not None:
                fresh[desc.origin] = []  # a new, empty map: codes in order of appearance
        if fresh:
            self.ops.append(("maps", fresh))

    def do_dotproduct(self, k: int, step: Step, params: dict) -> None:
        coeffs = params.get("coeffs")
        if not isinstance(coeffs, dict):
            raise self.fail(k, "parameter 'coeffs' is missing or not a map")
        clipping = bool(params.get("applyClipping", False))
        for raw, ab in sorted(coeffs.items()):
            name = _full(raw, self.where(k))
            desc = self.need(k, name)
            if desc.type != REAL:
                raise self.fail(k, "%s is not a Real descriptor" % name[1:])
            if not isinstance(ab, dict) or not isinstance(ab.get("a"), list) or not isinstance(ab.get("b"), list):
                raise self.fail(k, "coefficients of %s are not {a: [...], b: [...]}" % name[1:])
            try:
                a = np.array([float(v) for v in ab["a"]], dtype=np.float32)
                b = np.array([float(v) for v in ab["b"]], dtype=np.float32)
            except (TypeError, ValueError):
                raise self.fail(k, "coefficients of %s are not numbers" % name[1:]) from None
            size = desc.size if desc.fixed else self.lengths.get(desc.origin or "")
            if size is not None and (a.size < size or b.size < size) or (not desc.fixed and a.size != b.size):
                raise self.fail(k, "%s has %s values but %d/%d coefficients" % (name[1:], size, a.size, b.size))
            if desc.origin is not None:  # sliced to the fixed length once the whole chain is known
                self.ops.append(("dot", desc.origin, a, b, clipping, k))

    def do_distribute(self, k: int, step: Step, params: dict) -> None:
        dists = params.get("distribution")
        if not isinstance(dists, dict):
            raise self.fail(k, "parameter 'distribution' is missing or not a map")
        for key, blob in sorted(dists.items()):
            base, bracket, index = str(key).rpartition("[")
            if not bracket or not index.endswith("]") or not index[:-1].isdigit():
                raise self.fail(k, "distribution key %r is not name[dimension]" % str(key)[:80])
            name, dim = _full(base, self.where(k)), int(index[:-1])
            desc = self.need(k, name)
            if desc.type != REAL or not desc.fixed or dim >= (desc.size or 0):
                raise self.fail(k, "%s is not a fixed-length Real descriptor with a dimension %d" % (key, dim))
            if not isinstance(blob, (bytes, bytearray)) or not blob or len(blob) % 4:
                raise self.fail(k, "distribution %s is not a non-empty array of float32" % key)
            values = np.frombuffer(bytes(blob), dtype="<f4").astype(np.float32)
            if not np.all(np.isfinite(values)) or np.any(np.diff(values) < 0):
                raise self.fail(k, "distribution %s is not sorted finite values" % key)
            if desc.origin is not None:
                self.ops.append(("dist", desc.origin, dim, values, k))

    def do_addfieldapplier(self, k: int, step: Step, params: dict) -> None:
        sizes = params.get("size") if isinstance(params.get("size"), dict) else {}
        added = [(n, REAL) for n in _names(params, "real", self.where(k), False)]
        added += [(n, STRING) for n in _names(params, "string", self.where(k), False)]
        for name, dtype in added:
            if name in self.state:
                raise self.fail(k, "%s already exists" % name[1:])
            size = sizes.get(name[1:], sizes.get(name))
            if size is not None and not (isinstance(size, int) and 0 <= size <= 1 << 20):
                raise self.fail(k, "size of %s is not a small integer" % name[1:])
            self.state[name] = _Desc(dtype, size is not None, size, None)
        self.translate(step.input_layout)

    def do_renameapplier(self, k: int, step: Step, params: dict) -> None:
        old = _full(params.get("fullName"), self.where(k))
        new = _full(params.get("newName"), self.where(k))
        desc = self.need(k, old)
        if desc.type == ENUM:
            raise self.fail(k, "renaming the Enum descriptor %s is not supported (Gaia copies it through its "
                               "string storage)" % old[1:])
        del self.state[old]
        if new in self.state:
            raise self.fail(k, "%s already exists" % new[1:])
        self.state[new] = desc
        self.translate(step.input_layout)

    def do_svmpredict(self, k: int, step: Step, params: dict) -> None:
        if self.svm is not None:
            raise self.fail(k, "a second svmpredict is not supported")
        class_name = params.get("className")
        mapping = params.get("classMapping")
        if not isinstance(class_name, str) or not class_name.strip(".") or len(class_name) > MAX_CLASS_NAME:
            raise self.fail(k, "className is missing or not a name")
        class_name = class_name.lstrip(".")
        if not isinstance(mapping, list) or not mapping or not all(isinstance(c, str) for c in mapping):
            raise self.fail(k, "classMapping is missing or not a list of class names")
        if len(set(mapping)) != len(mapping):
            raise self.fail(k, "classMapping lists a class twice")
        label = self.need(k, "." + class_name)
        if label.type != STRING:
            raise self.fail(k, "the class descriptor %s is not a String" % class_name)
        names = _names(params, "descriptorNames", self.where(k))
        features = []
        width = 0
        for name in names:
            desc = self.need(k, name)
            if desc.type not in (REAL, ENUM):
                raise self.fail(k, "feature %s is a String descriptor (Gaia: enumerate it first)" % name[1:])
            if not desc.fixed:
                raise self.fail(k, "feature %s is variable-length (Gaia: \"Region::dimension: you need to "
                                   "specify a sample point\")" % name[1:])
            if desc.origin is None:
                raise self.fail(k, "feature %s is an added field, not a value of the document" % name[1:])
            features.append((name, desc.origin, desc.type, desc.size))
            width += desc.size
        text = params.get("modelData")
        if isinstance(text, SvmModel):
            from abrunnerd.gaia.libsvm_text import render_model
            text = render_model(text)
        if not isinstance(text, (bytes, bytearray, str)):
            raise self.fail(k, "modelData is missing or not the text of a libsvm model")
        try:
            predictor = parse_svm_model(text, width)
        except SvmModelError as exc:
            raise self.fail(k, "SVMPredict: could not load model: %s" % exc) from None
        if sorted(predictor.labels) != list(range(len(mapping))):
            raise self.fail(k, "the model's labels %s are not the indices of the %d classes of classMapping"
                            % (predictor.labels[:10], len(mapping)))
        probability = params.get("probability", False)
        if not isinstance(probability, (bool, int)):
            raise self.fail(k, "probability is not a boolean")
        if probability and not predictor.has_probability:
            raise self.fail(k, "probability is requested but the model has no probA/probB")
        self.svm = {"class_name": class_name, "mapping": list(mapping), "features": features,
                    "predictor": predictor, "probability": bool(probability)}
        if probability:
            if "." + class_name + "Probability" in self.state:
                raise self.fail(k, "%sProbability already exists" % class_name)
            self.state["." + class_name + "Probability"] = _Desc(REAL, False, None, None)


class Model(object):
    """A compiled classification history: ``predict`` many documents at once.

    The live Real values of a batch form one float32 matrix (one column block per input
    descriptor); each ``dotproduct``/``distribute`` transformation is one vectorised
    operation on its columns; Enum features stay strings until the SVM needs their codes.
    """

    def __init__(self, steps: Sequence[Step], source: str = "model") -> None:
        c = _Compiler(steps, source)
        c.run()
        svm = c.svm
        assert svm is not None
        self.source = source
        self.class_name = svm["class_name"]  # e.g. "highlevel.genre"
        self.class_mapping = svm["mapping"]
        self.probability = svm["probability"]
        self.predictor = svm["predictor"]  # type: SvmPredictor
        self.features = svm["features"]
        live = {origin for _, origin, _, _ in self.features}
        self.inputs = []  # type: List[InputSpec]
        self.offsets = {}  # type: Dict[str, Tuple[int, int]]  # live Real origin -> columns of the matrix
        self.width = 0
        for d in c.first:
            kind = REAL if d.type == REAL else STRING
            spec = InputSpec(d.name, tuple(d.name[1:].split(".")), kind, c.lengths.get(d.name, -1),
                             d.name in live, kind == STRING and d.name.startswith(".metadata.version"))
            self.inputs.append(spec)
            if spec.live and kind == REAL:
                self.offsets[d.name] = (self.width, spec.length)
                self.width += spec.length
        self._plan = [(spec, spec.path[:-1], spec.path[-1], spec.kind == REAL, spec.length, spec.live, spec.skipped,
                       self.offsets.get(spec.name, (0, 0))[0]) for spec in self.inputs]
        self._live = [(spec.name, spec.kind == REAL, self.offsets.get(spec.name, (0, 0))[0])
                      for spec in self.inputs if spec.live]
        self.initial_maps = {d.name: list(c.first_maps.get(d.name, [])) for d in c.first if d.type == ENUM}
        self.ops = self._fuse([op for op in c.ops if op[0] == "maps" or op[1] in live], live)
        columns, self.enum_features = [], []  # type: List[np.ndarray], List[Tuple[int, str, int]]
        position = 0
        for _, origin, dtype, size in self.features:
            if dtype == REAL:
                start = self.offsets[origin][0]
                columns.append(np.arange(start, start + size))
            else:
                self.enum_features.append((position, origin, size))
            position += size
        self.real_columns = np.concatenate(columns) if columns else np.zeros(0, dtype=int)
        self.real_positions = np.array([i for i in range(position)
                                        if not any(p <= i < p + n for p, _, n in self.enum_features)], dtype=int)
        self.n_features = position

    def _fuse(self, ops: List[tuple], live: set) -> List[tuple]:
        """One vectorised op per dotproduct/distribute transformation, on matrix column indices."""
        fused = []  # type: List[tuple]
        for op in ops:
            if op[0] == "maps":
                fused.append(("maps", {o: m for o, m in op[1].items() if o in live}))
                continue
            start, length = self.offsets[op[1]]
            if op[0] == "dot":
                if op[2].size < length or op[3].size < length:
                    raise ModelError("%s: transformation %d (dotproduct): %s has %d values but %d/%d coefficients"
                                     % (self.source, op[5], op[1][1:], length, op[2].size, op[3].size))
                op = op[:2] + (op[2][:length], op[3][:length]) + op[4:]
                cols = np.arange(start, start + length)
                if fused and fused[-1][0] == "dot" and fused[-1][5] == op[5]:
                    last = fused.pop()
                    op = ("dot", np.concatenate([last[1], cols]), np.concatenate([last[2], op[2]]),
                          np.concatenate([last[3], op[3]]), op[4], op[5])
                else:
                    op = ("dot", cols, op[2], op[3], op[4], op[5])
            else:
                col = start + op[2]
                if fused and fused[-1][0] == "dist" and fused[-1][3] == op[4]:
                    last = fused.pop()
                    op = ("dist", last[1] + [col], last[2] + [op[3]], op[4])
                else:
                    op = ("dist", [col], [op[3]], op[4])
            fused.append(op)
        return [(op[0], np.array(op[1]), op[2]) if op[0] == "dist" else op for op in fused]

    @property
    def name(self) -> str:
        """The model's name as Essentia's output keys show it (``highlevel.<name>`` -> ``<name>``)."""
        return self.class_name[len("highlevel."):] if self.class_name.startswith("highlevel.") else self.class_name

    def output_path(self) -> Tuple[str, ...]:
        """Where Essentia's pool keys put the result in a nested JSON document."""
        return tuple(self.class_name.split("."))

    # --- per document -------------------------------------------------------------------
    def extract(self, doc: Any) -> Tuple[List[float], Dict[str, List[str]]]:
        """The live values of one document (poolToPoint): Real values in matrix column order, Enum strings.

        DocumentError on what Essentia refuses: a missing descriptor, one of the wrong kind,
        a length other than the model's.
        """
        return _extract(doc, self._plan, self.width)

    def _row(self, values: Dict[str, Any]) -> Tuple[List[float], Dict[str, List[str]]]:
        reals = [0.0] * self.width
        strings = {}  # type: Dict[str, List[str]]
        for name, is_real, start in self._live:
            if is_real:
                v = values[name]
                reals[start:start + len(v)] = v
            else:
                strings[name] = values[name]
        return reals, strings

    # --- per batch ----------------------------------------------------------------------
    def feature_matrix(self, rows: List[Tuple[List[float], Dict[str, List[str]]]]) -> np.ndarray:
        """The (n, d) float64 SVM inputs of extracted rows, after every transformation before svmpredict."""
        with np.errstate(over="ignore"):
            matrix = np.array([r[0] for r in rows], dtype=np.float64).astype(np.float32).reshape(len(rows), self.width)
        maps = dict(self.initial_maps)
        for op in self.ops:
            if op[0] == "maps":
                maps.update(op[1])
            elif op[0] == "dot":
                matrix[:, op[1]] = dot_product(matrix[:, op[1]], op[2], op[3], op[4])
            else:
                matrix[:, op[1]] = distribute_block(matrix[:, op[1]], op[2])
        x = np.empty((len(rows), self.n_features))
        x[:, self.real_positions] = matrix[:, self.real_columns]
        for position, origin, size in self.enum_features:
            x[:, position:position + size] = _enum_codes([r[1][origin] for r in rows], maps.get(origin, []), size)
        return x

    def predict_rows(self, rows: List[Tuple[List[float], Dict[str, List[str]]]]) -> List[Any]:
        """Apply the compiled chain to extracted rows: a :class:`Prediction` or a DocumentError each."""
        if not rows:
            return []
        x = self.feature_matrix(rows)
        results = [None] * len(rows)  # type: List[Any]
        finite = np.isfinite(x).all(axis=1)
        for i in np.nonzero(~finite)[0]:
            column = int(np.argmax(~np.isfinite(x[i])))
            results[i] = DocumentError("SVM feature %s is not finite (NaN or infinity after the model's "
                                       "transformations)" % self._feature_at(column))
        good = np.nonzero(finite)[0]
        if good.size:
            xs = x[good]
            labels = self.predictor.labels
            if self.probability:
                probs = self.predictor.probabilities(xs)
                best = np.argmax(probs, axis=1)
                classes = [self.class_mapping[label] for label in labels]
                for row, i in enumerate(good):
                    all_ = dict(zip(classes, probs[row].tolist()))
                    value = classes[int(best[row])]
                    results[i] = Prediction(value, all_[value], {c: all_[c] for c in self.class_mapping})
            else:
                best = self.predictor.vote(xs)
                for row, i in enumerate(good):
                    results[i] = Prediction(self.class_mapping[labels[int(best[row])]], None, None)
        return results

    def _feature_at(self, column: int) -> str:
        start = 0
        for name, _, _, size in self.features:
            if column < start + size:
                return "%s[%d]" % (name[1:], column - start) if size > 1 else name[1:]
            start += size
        return "?"

    def input_signature(self) -> tuple:
        """What the first layout asks of a document; equal signatures validate documents alike."""
        return tuple((s.name, s.kind, s.length, s.skipped) for s in self.inputs)

    def predict(self, documents: Iterable[Any]) -> List[Any]:
        """One result per document, in order: a :class:`Prediction` or the document's DocumentError."""
        return predict_many([self], list(documents))[0]

    def predict_extracted(self, extracted: Sequence[Any]) -> List[Any]:
        """Results for documents already read by :func:`_extract` ({name: values} or a DocumentError)."""
        results = []  # type: List[Any]
        rows, slots = [], []
        for values in extracted:
            if isinstance(values, DocumentError):
                results.append(values)
                continue
            rows.append(values if isinstance(values, tuple) else self._row(values))
            slots.append(len(results))
            results.append(None)
        for slot, result in zip(slots, self.predict_rows(rows)):
            results[slot] = result
        return results


def _extract(doc: Any, plan: List[tuple], width: int = -1) -> Any:
    """The live values of ``plan`` in a document; DocumentError on what Essentia refuses.

    With ``width`` >= 0: (Real values in matrix column order, {Enum name: strings}) for one
    model; otherwise {name: values} for a group of models sharing the plan.
    """
    if not isinstance(doc, dict):
        raise DocumentError("the document is not a JSON object")
    out = {}  # type: Dict[str, Any]
    reals = [0.0] * width if width >= 0 else None
    parent_path = None  # type: Any
    parent = None  # type: Any
    # sorted by name: consecutive descriptors share their parent (plain tuples: the hot loop)
    for spec, parent_keys, leaf, is_real, length, live, skipped, start in plan:
        if skipped:
            values = [""]  # type: Any
            n = 1
        else:
            if parent_keys != parent_path:
                parent_path = parent_keys
                parent = doc
                for key in parent_keys:
                    parent = parent.get(key) if type(parent) is dict else None
                    if parent is None:
                        break
            node = parent.get(leaf) if type(parent) is dict else None
            if is_real and type(node) is float:
                values, n = [node], 1
            else:
                values, n = _read_value(node, spec)
        if length >= 0 and n != length:
            raise DocumentError("descriptor %s has %d values, the model was trained on %d"
                                % (spec.name[1:], n, length))
        if live:
            if reals is not None and is_real:
                reals[start:start + n] = values
            else:
                out[spec.name] = values
    return out if reals is None else (reals, out)


def predict_many(models: Sequence["Model"], documents: Sequence[Any]) -> List[List[Any]]:
    """``[model][document]`` results; models whose first layouts are the same (all AB models of
    one template are) read each document once for all of them."""
    groups = {}  # type: Dict[tuple, List[int]]
    for i, model in enumerate(models):
        groups.setdefault(model.input_signature(), []).append(i)
    results = [None] * len(models)  # type: List[Any]
    for members in groups.values():
        group = [models[i] for i in members]
        live = set().union(*[{s.name for s in m.inputs if s.live} for m in group])
        plan = [(spec, pk, leaf, real, length, spec.name in live, skipped, 0)
                for spec, pk, leaf, real, length, _, skipped, _ in group[0]._plan]
        if len(group) == 1:  # straight into the model's row: no intermediate dict
            plan, width = group[0]._plan, group[0].width
        else:
            width = -1
        extracted = []  # type: List[Any]
        for doc in documents:
            try:
                extracted.append(_extract(doc, plan, width))
            except DocumentError as exc:
                extracted.append(exc)
        for i, model in zip(members, group):
            results[i] = model.predict_extracted(extracted)
    return results


def _read_value(node: Any, spec: InputSpec) -> Tuple[Any, int]:
    """(values, count) of one pool entry as ``poolToPoint`` reads it; DocumentError if absent."""
    kind = type(node)
    if spec.kind == REAL:
        if kind is float or kind is int or kind is bool or isinstance(node, (int, float)):
            return [float(node)], 1
        if kind is list:
            if not node:
                return [], 0
            first = type(node[0])
            if first is list:
                rows, cols = len(node), len(node[0])
                if not spec.live:
                    return None, 2 + rows * cols
                flat = [float(rows), float(cols)]
                for r in node:
                    if type(r) is not list or len(r) != cols:
                        raise DocumentError("descriptor %s is a matrix with rows of different lengths" % spec.name[1:])
                    flat.extend(r)
                return _numbers(flat, spec), len(flat)
            if first is float or first is int or first is bool or isinstance(node[0], (int, float)):
                return (_numbers(node, spec) if spec.live else None), len(node)
            raise DocumentError("descriptor %s is a list of %s, the model needs numbers"
                                % (spec.name[1:], first.__name__))
    else:
        if kind is str:
            return [node], 1
        if kind is list and node and all(type(s) is str for s in node):
            return list(node), len(node)
    want = "a number or a list of numbers" if spec.kind == REAL else "a string or a list of strings"
    if node is None:
        raise DocumentError("descriptor %s is missing (Essentia: \"could not be found in pool\")" % spec.name[1:])
    raise DocumentError("descriptor %s is %s, the model needs %s" % (spec.name[1:], type(node).__name__, want))


_NUMBER_TYPES = (float, int, bool)
_BIG = 1.7e308


def _numbers(values: List[Any], spec: InputSpec) -> List[Any]:
    """The values themselves, once every one is a JSON number (a numeric string is not one for Essentia)."""
    for v in values:
        t = type(v)
        if t is float:
            continue
        if t is bool or (t is int and -_BIG < v < _BIG):
            continue
        if isinstance(v, (int, float)) and -_BIG < v < _BIG or isinstance(v, float):
            continue  # numpy scalars from API callers
        if t is int:
            raise DocumentError("descriptor %s holds an integer too large for a real number" % spec.name[1:])
        raise DocumentError("descriptor %s mixes numbers with %s values" % (spec.name[1:], t.__name__))
    return values


def _enum_codes(column: List[List[str]], known: List[str], size: int) -> np.ndarray:
    """Codes of the current map; unseen strings get len(map), len(map)+1 ... in order of appearance."""
    table = {s: i for i, s in enumerate(known)}
    out = np.empty((len(column), size))
    for r, strings in enumerate(column):
        extra = {}  # type: Dict[str, int]
        for j, s in enumerate(strings):
            code = table.get(s)
            if code is None:
                code = extra.setdefault(s, len(table) + len(extra))
            out[r, j] = code
    return out


def load_model(path: str) -> Model:
    """Read and compile a ``.history``; HistoryError (malformed file) or ModelError (cannot apply)."""
    from abrunnerd.gaia.history import read_history

    return Model(read_history(path), source=str(path))


def compile_steps(steps: Sequence[Step], source: str = "model") -> Model:
    return Model(steps, source)


__all__ = ["SUPPORTED", "ModelError", "DocumentError", "Prediction", "Model", "load_model", "compile_steps",
           "predict_many"]
