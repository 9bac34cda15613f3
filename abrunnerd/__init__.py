"""abrunnerd: train AcousticBrainz dataset classifiers on the dataset owner's machine."""

__version__ = "0.1.0"
