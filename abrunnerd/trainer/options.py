"""Training options: AcousticBrainz's job options with AB's defaults, validated once."""
from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple

from abrunnerd.trainer.errors import OptionsError

DEFAULT_C = (-5, -3, -1, 1, 3, 5, 7, 9, 11)
DEFAULT_GAMMA = (3, 1, -1, -3, -5, -7, -9, -11)
DEFAULT_PREPROCESSING = ("basic", "lowlevel", "nobands", "normalized", "gaussianized")
JOB_PREPROCESSING = DEFAULT_PREPROCESSING + ("mfcc",)  # what a server's job may ask for
KNOWN_PREPROCESSING = JOB_PREPROCESSING + ("raw",)  # Gaia's template also defines "raw" (no transformation)
KERNELS = ("poly", "RBF")  # the template's spelling, as AB stored it in the result
DEFAULT_SEED = 42
JOB_KEYS = ("c_values", "gamma_values", "preprocessing_values", "filter_type", "normalize")
MAX_EXPONENT = 30  # 2**30 is already far outside any useful C or gamma


def _exponents(key: str, value: Any) -> Tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise OptionsError("option %s must be a non-empty list of integer exponents, got %r" % (key, value))
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
            raise OptionsError("option %s: %r is not an integer exponent (C and gamma are log2 values)" % (key, v))
        if abs(v) > MAX_EXPONENT:
            raise OptionsError("option %s: exponent %r is outside -%d..%d" % (key, v, MAX_EXPONENT, MAX_EXPONENT))
        if int(v) not in out:
            out.append(int(v))
    return tuple(out)


def _preprocessing(value: Any, known: Sequence[str] = KNOWN_PREPROCESSING) -> Tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise OptionsError("option preprocessing_values must be a non-empty list of names, got %r" % (value,))
    out = []
    for v in value:
        if v not in known:
            raise OptionsError("option preprocessing_values: unknown preprocessing %r (known: %s)"
                               % (v, ", ".join(known)))
        if v not in out:
            out.append(v)
    return tuple(out)


class _Fields(NamedTuple):
    c_values: Tuple[int, ...] = DEFAULT_C
    gamma_values: Tuple[int, ...] = DEFAULT_GAMMA
    preprocessing_values: Tuple[str, ...] = DEFAULT_PREPROCESSING
    filter_type: Optional[str] = None  # None or "artist"
    normalize: bool = False
    seed: int = DEFAULT_SEED
    nfold: int = 5
    kernels: Tuple[str, ...] = KERNELS
    template: Optional[str] = None  # None = choose by the documents' layout
    # Gaia master's grid dimension; () = AcousticBrainz's grid, which has no balanceClasses at all
    balance_classes: Tuple[bool, ...] = ()
    # a project file's own preprocessing sets: ((name, ((transfo, args), ...)), ...); None = the template's
    preprocessing_sets: Optional[Tuple[Tuple[str, Tuple[Tuple[str, Tuple[Tuple[str, Any], ...]], ...]], ...]] = None
    excluded: Tuple[str, ...] = ()  # the project's excludedDescriptors, removed at the merge
    fail_on_unmatched: bool = False  # the project's failOnUnmatched, for ``excluded``


class TrainOptions(_Fields):
    """The grid and dataset selection of one training run; C and gamma are log2 exponents.

    Immutable, and checked when made: a bad value raises OptionsError from the constructor.
    """

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> "TrainOptions":
        self = super().__new__(cls, *args, **kwargs)
        self._check()
        return self

    def _check(self) -> None:
        _exponents("c_values", list(self.c_values))
        _exponents("gamma_values", list(self.gamma_values))
        sets = [name for name, _ in self.preprocessing_sets or ()]
        _preprocessing(list(self.preprocessing_values), sets if self.preprocessing_sets is not None
                       else KNOWN_PREPROCESSING)
        if any(not isinstance(b, bool) for b in self.balance_classes) or \
                len(set(self.balance_classes)) != len(self.balance_classes):
            raise OptionsError("balanceClasses must be a list of distinct true/false values, got %r"
                               % (list(self.balance_classes),))
        if self.filter_type not in (None, "artist"):
            raise OptionsError("option filter_type must be null or \"artist\", got %r" % (self.filter_type,))
        if not isinstance(self.normalize, bool):
            raise OptionsError("option normalize must be true or false, got %r" % (self.normalize,))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise OptionsError("seed must be an integer, got %r" % (self.seed,))
        if not 2 <= self.nfold <= 50:
            raise OptionsError("nfold must be between 2 and 50, got %r" % (self.nfold,))
        for k in self.kernels:
            if k not in KERNELS:
                raise OptionsError("unknown kernel %r (known: poly, RBF)" % (k,))
        if self.template not in (None, "2.1-beta2", "2.1-beta5"):
            raise OptionsError("template must be 2.1-beta2 or 2.1-beta5, got %r" % (self.template,))

    @classmethod
    def from_job_options(cls, options: Optional[Dict[str, Any]], seed: int = DEFAULT_SEED,
                         **extra: Any) -> "TrainOptions":
        """Read a job's ``options`` (AB's keys); absent keys take AB's defaults."""
        if options is not None and not isinstance(options, dict):
            raise OptionsError("job options must be a JSON object with keys %s, got %s"
                               % (", ".join(JOB_KEYS), type(options).__name__))
        options = dict(options or {})
        unknown = sorted(k for k in options if k not in JOB_KEYS)
        if unknown:
            raise OptionsError("unknown job option(s) %s (known: %s)" % (", ".join(unknown), ", ".join(JOB_KEYS)))
        kwargs = dict(extra)
        if options.get("c_values") is not None:
            kwargs["c_values"] = _exponents("c_values", options["c_values"])
        if options.get("gamma_values") is not None:
            kwargs["gamma_values"] = _exponents("gamma_values", options["gamma_values"])
        if options.get("preprocessing_values") is not None:
            kwargs["preprocessing_values"] = _preprocessing(options["preprocessing_values"], JOB_PREPROCESSING)
        kwargs["filter_type"] = options.get("filter_type")
        normalize = options.get("normalize")
        kwargs["normalize"] = False if normalize is None else normalize  # validated in _check
        return cls(seed=seed, **kwargs)

    def combinations(self) -> Sequence[Tuple[str, str, int, int]]:
        """Every (preprocessing, kernel, C, gamma) of the grid, in the job's order (no balanceClasses)."""
        return [(p, k, c, g) for p in self.preprocessing_values for k in self.kernels
                for c in self.c_values for g in self.gamma_values]

    def configurations(self) -> Sequence[Tuple[str, str, int, int, Optional[bool]]]:
        """Every (preprocessing, kernel, C, gamma, balanceClasses) in grid order; None = no such dimension."""
        balance = self.balance_classes or (None,)
        return [(p, k, c, g, b) for (p, k, c, g) in self.combinations() for b in balance]

    def preprocessing_definition(self, name: str) -> Optional[Sequence[Tuple[str, Dict[str, Any]]]]:
        """The project file's steps of set ``name`` as (transfo, args), or None for the built-in sets."""
        for set_name, steps in self.preprocessing_sets or ():
            if set_name == name:
                return [(op, dict(args)) for op, args in steps]
        return None

    def to_json(self) -> Dict[str, Any]:
        return {"c_values": list(self.c_values), "gamma_values": list(self.gamma_values),
                "preprocessing_values": list(self.preprocessing_values), "filter_type": self.filter_type,
                "normalize": self.normalize, "seed": self.seed, "nfold": self.nfold,
                "kernels": list(self.kernels), "template": self.template,
                "balance_classes": list(self.balance_classes),
                "preprocessing_sets": None if self.preprocessing_sets is None else [
                    [name, [[op, sorted([k, list(v) if isinstance(v, tuple) else v] for k, v in args)]
                            for op, args in steps]] for name, steps in self.preprocessing_sets],
                "excluded": list(self.excluded), "fail_on_unmatched": self.fail_on_unmatched}
