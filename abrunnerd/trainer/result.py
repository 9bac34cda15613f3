"""What a training run returns, and its Result JSON (docs/protocol.md, without "runner")."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from abrunnerd.trainer.model import FinalModel


@dataclass
class Combination:
    preprocessing: str
    kernel: str
    c: int
    gamma: int
    status: str  # "ok" or "failed"
    correct: int = 0
    total: int = 0
    fold_correct: List[Optional[int]] = field(default_factory=list)
    fold_total: List[Optional[int]] = field(default_factory=list)
    confusion: List[List[int]] = field(default_factory=list)
    error: Optional[str] = None
    balance_classes: Optional[bool] = None  # None: the grid has no balanceClasses dimension (AB's)
    fold_confusion: List[Optional[List[List[int]]]] = field(default_factory=list)

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


@dataclass
class TrainResult:
    best: Combination
    combinations: List[Combination]
    classes: List[str]  # classMapping order
    model: FinalModel
    seed: int
    nfold: int
    dataset_info: Dict[str, Any]
    held_out: Dict[str, str] = field(default_factory=dict)

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
