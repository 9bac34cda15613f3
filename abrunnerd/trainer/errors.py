"""Exceptions the trainer raises; callers turn them into a failed job or an exit code."""


class DatasetError(ValueError):
    """The dataset or the job options cannot be trained; the message says what to fix."""


class OptionsError(DatasetError):
    """A job option is invalid (unknown key, wrong type, value outside the grid's range)."""


class TrainingStopped(Exception):
    """``should_stop()`` returned True; the checkpoint keeps every finished cell."""


class PredictionError(ValueError):
    """A document cannot be mapped through a model's steps (missing or resized descriptor)."""


class FoldError(Exception):
    """One (preprocessing, fold) unit cannot be trained, e.g. normalize divides by zero."""
