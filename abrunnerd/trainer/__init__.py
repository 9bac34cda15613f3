"""The Gaia-compatible trainer: AcousticBrainz's SVM model search on numpy + scikit-learn.

Pure: no HTTP, no D-Bus.  ``train(dataset, options)`` merges and preprocesses the
low-level documents as Gaia does, cross-validates every (preprocessing, kernel, C,
gamma) cell with shared folds, picks the best configuration and fits the final model,
whose ``steps`` are the Gaia history (see ``docs/trainer.md``).
"""
from abrunnerd.trainer.dataset import Dataset, load_dataset_dir, strip_document
from abrunnerd.trainer.errors import DatasetError, OptionsError, PredictionError, TrainingStopped
from abrunnerd.trainer.memory import estimate_peak_memory
from abrunnerd.trainer.options import TrainOptions
from abrunnerd.trainer.progress import Progress
from abrunnerd.trainer.result import TrainResult
from abrunnerd.trainer.train import evaluate_cells, train

__all__ = ["Dataset", "load_dataset_dir", "strip_document", "DatasetError", "OptionsError", "PredictionError",
           "TrainingStopped", "estimate_peak_memory", "TrainOptions", "Progress", "TrainResult",
           "evaluate_cells", "train"]
