"""Applying a preprocessing set (spec §6.2) to the merged dataset, fitted on all training data."""
from typing import Dict, List, Optional, Sequence, Tuple

from abrunnerd.gaia.chain import Step
from abrunnerd.trainer import steps as fit
from abrunnerd.trainer.errors import DatasetError
from abrunnerd.trainer.frame import Frame
from abrunnerd.trainer.patterns import PatternError, first_match
from abrunnerd.trainer.templates import preprocessing_steps


def apply_preprocessing(frame: Frame, name: str, template: str,
                        dropped: Dict[str, List[str]] = None,
                        definition: Optional[Sequence[Tuple[str, dict]]] = None) -> Tuple[List[Step], Frame]:
    """The steps of set ``name`` and the data after them; a pattern that matches nothing is a DatasetError.

    ``definition`` = a project file's (transfo, args) list (see gaia_project.py); None = the
    built-in set of ``template``.
    """
    out: List[Step] = []
    for op, args in (definition if definition is not None else preprocessing_steps(name, template)):
        try:
            if op == "remove":
                step, frame = fit.fit_remove(frame, args["patterns"], args.get("excepts", ()))
            elif op == "select":
                step, frame = fit.fit_select(frame, args["patterns"], args.get("excepts", ()))
            elif op == "enumerate":
                step, frame = fit.fit_enumerate(frame, args["patterns"])
            elif op == "normalize":
                step, frame = fit.fit_normalize(frame, independent=bool(args.get("independent", False)))
            elif op == "cleaner":
                step, frame = fit.fit_cleaner(frame)
            elif op == "gaussianize":
                step, frame = fit.fit_gaussianize(frame, args["patterns"])
            else:
                raise DatasetError("preprocessing %r: unsupported transformation %r" % (name, op))
        except PatternError as e:
            source = "the project file's sets" if definition is not None else "template " + template
            raise DatasetError(_pattern_message(e, name, source, dropped or {})) from None
        out.append(step)
    return out, frame


def _pattern_message(error: PatternError, preprocessing: str, template: str, dropped: Dict[str, List[str]]) -> str:
    msg = "preprocessing %r of %s: %s" % (preprocessing, template, error)
    lost = first_match(error.pattern, dropped)
    if lost is not None:
        lacking = dropped[lost]
        if lacking:
            msg += "; descriptor %s was dropped because %d recording(s) lack it, e.g. %s" % (
                lost[1:], len(lacking), lacking[0])
        else:
            msg += "; descriptor %s was dropped because its type differs between recordings" % lost[1:]
    else:
        msg += " (the dataset's documents do not have the descriptors this template expects, or they are " \
               "constant in every recording)"
    return msg
