"""What a training run returns, and its Result JSON (docs/protocol.md, without "runner")."""
from typing import Any, Dict, List, NamedTuple, Optional

from abrunnerd.trainer.model import FinalModel


class Combination:
    """One grid configuration's pooled cross-validation score; filled in fold by fold."""

    __slots__ = ("preprocessing", "kernel", "c", "gamma", "status", "correct", "total", "fold_correct",
                 "fold_total", "confusion", "error", "balance_classes", "fold_confusion")

    def __init__(self, preprocessing: str, kernel: str, c: int, gamma: int, status: str, correct: int = 0,
                 total: int = 0, fold_correct: Optional[List[Optional[int]]] = None,
                 fold_total: Optional[List[Optional[int]]] = None, confusion: Optional[List[List[int]]] = None,
                 error: Optional[str] = None, balance_classes: Optional[bool] = None,
                 fold_confusion: Optional[List[Optional[List[List[int]]]]] = None) -> None:
        self.preprocessing = preprocessing
        self.kernel = kernel
        self.c = c
        self.gamma = gamma
        self.status = status  # "ok" or "failed"
        self.correct = correct
        self.total = total
        self.fold_correct = [] if fold_correct is None else fold_correct  # type: List[Optional[int]]
        self.fold_total = [] if fold_total is None else fold_total  # type: List[Optional[int]]
        self.confusion = [] if confusion is None else confusion  # type: List[List[int]]
        self.error = error
        self.balance_classes = balance_classes  # None: the grid has no balanceClasses dimension (AB's)
        self.fold_confusion = [] if fold_confusion is None else fold_confusion  # per fold; None = failed

    def __repr__(self) -> str:
        return "Combination(%r, %r, C=%r, gamma=%r, %s, %d/%d)" % (
            self.preprocessing, self.kernel, self.c, self.gamma, self.status, self.correct, self.total)

    @property
    def accuracy(self) -> Optional[float]:
        if self.status != "ok" or not self.total:
            return None
        return 100.0 * self.correct / self.total

    def key(self) -> tuple:
        return (self.preprocessing, self.kernel, self.c, self.gamma, self.balance_classes)

    def to_json(self) -> Dict[str, Any]:
        acc = self.accuracy
        out = {"preprocessing": self.preprocessing, "kernel": self.kernel, "C": self.c, "gamma": self.gamma,
               "status": self.status, "accuracy": None if acc is None else round(acc, 2),
               "fold_correct": list(self.fold_correct), "fold_total": list(self.fold_total),
               "error": self.error}
        if self.balance_classes is not None:
            out["balanceClasses"] = self.balance_classes
        return out


class TrainResult(NamedTuple):
    best: Combination
    combinations: List[Combination]
    classes: List[str]  # classMapping order
    model: FinalModel
    seed: int
    nfold: int
    dataset_info: Dict[str, Any]
    held_out: Dict[str, str]  # recordings left out by balanceClasses -> class

    @property
    def accuracy(self) -> float:
        return round(self.best.accuracy, 2)

    def confusion_matrix(self) -> Dict[str, Dict[str, int]]:
        """AB's shape: {true class: {predicted class: count}}, non-zero cells only."""
        out: Dict[str, Dict[str, int]] = {}
        for i, actual in enumerate(self.classes):
            for j, predicted in enumerate(self.classes):
                count = self.best.confusion[i][j] if self.best.confusion else 0
                if count:
                    out.setdefault(actual, {})[predicted] = int(count)
        return out

    def best_model_parameters(self) -> Dict[str, Any]:
        model = {"classifier": "svm", "preprocessing": self.best.preprocessing, "type": "C-SVC",
                 "kernel": self.best.kernel, "C": self.best.c, "gamma": self.best.gamma}
        if self.best.balance_classes is not None:
            model["balanceClasses"] = self.best.balance_classes
        return model

    def to_result_json(self) -> Dict[str, Any]:
        return {
            "parameters": {"model": self.best_model_parameters(),
                           "evaluation": {"type": "nfoldcrossvalidation", "nfold": self.nfold}},
            "accuracy": self.accuracy,
            "confusion_matrix": self.confusion_matrix(),
            "seed": self.seed,
            "combinations": [c.to_json() for c in self.combinations],
            "dataset": dict(self.dataset_info),
        }
