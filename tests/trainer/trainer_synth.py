"""Small hand-made low-level documents with AB's key names, for unit tests."""
import copy
from typing import Any, Dict


def doc(x_mean: float, bands: list, key: str = "C", scale: str = "major", beats: int = 2,
        spread: float = 0.0) -> Dict[str, Any]:
    """A document with every pattern of the 2.1-beta2 template matching something."""
    return {
        "metadata": {"version": {"essentia": "2.1-beta2"}, "audio_properties": {"length": 30.0}},
        "lowlevel": {
            "spectral_centroid": {"mean": x_mean, "var": 2.0 + spread, "dmean": 1.0 + spread, "dvar": spread,
                                  "min": 0.1 * spread, "max": 9.0 + spread},
            "barkbands": {"mean": list(bands)},
            "melbands": {"mean": [x_mean + spread]},
            "erbbands": {"mean": [x_mean - spread]},
            "spectral_energyband_low": {"mean": 2.0 * spread},
            "mfcc": {"mean": [x_mean, 1.0 + spread], "cov": [[1.0, spread], [spread, 1.0]]},
            "spectral_energyband_high": {"mean": 0.5 + spread},
            "silence_rate_60dB": {"mean": 0.25 + spread},
        },
        "rhythm": {"bpm": 120.0 + spread, "beats_position": [0.5 * i for i in range(beats)], "constant": 7.0},
        "tonal": {"key_key": key, "key_scale": scale, "chords_key": key, "chords_scale": scale,
                  "thpcp": [1.0, 0.5 + spread], "chords_histogram": [spread, 1.0 + spread]},
    }


def tiny_documents() -> Dict[str, Dict[str, Any]]:
    """Three points in MBID order a, b, c with hand-checkable values."""
    return {
        "b": doc(3.0, [3.0, 6.0], key="D", beats=3, spread=0.5),
        "a": doc(1.0, [1.0, 2.0], key="C", beats=2, spread=0.0),
        "c": doc(2.0, [5.0, 4.0], key="D", scale="minor", beats=2, spread=1.0),
    }


def variant(base: Dict[str, Any], **changes: Any) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for path, value in changes.items():
        node = out
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        if value is None:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return out
