"""The descriptor lists of Gaia's project templates and the preprocessing sets (spec §6).

The template is chosen by the documents' layout, not their version string
(decisions.md 1): AcousticBrainz-layout documents (``tonal.key_key``) get the
2.1-beta2 lists even when they claim a newer Essentia.
"""
from typing import Dict, List, Sequence, Tuple

UNUSED_BETA2 = ["metadata.*", "*dmean*", "*dvar*", "*.min", "*.max", "*cov", "tonal.thpcp",
                "lowlevel.spectral_energyband_high.*", "lowlevel.silence_rate*"]
STRINGS_BETA2 = ["tonal.chords_key", "tonal.chords_scale", "tonal.key_key", "tonal.key_scale"]
UNUSED_BETA5 = UNUSED_BETA2 + ["rhythm.bpm_histogram", "lowlevel.melbands128.*"]
STRINGS_BETA5 = ["tonal.chords_key", "tonal.chords_scale", "tonal.key_krumhansl.key", "tonal.key_edma.key",
                 "tonal.key_temperley.key", "tonal.key_krumhansl.scale", "tonal.key_edma.scale",
                 "tonal.key_temperley.scale"]
TEMPLATES: Dict[str, Tuple[List[str], List[str]]] = {
    "2.1-beta2": (UNUSED_BETA2, STRINGS_BETA2),
    "2.1-beta5": (UNUSED_BETA5, STRINGS_BETA5),
}
BANDS = ["barkbands*", "*energyband*", "melbands*", "erbbands*"]
GAUSSIANIZE = ["lowlevel.*"]


def choose_template(names: Sequence[str]) -> str:
    """2.1-beta5 lists only for documents that have the newer key layout; otherwise 2.1-beta2."""
    present = set(names)
    if ".tonal.key_key" not in present and ".tonal.key_edma.key" in present:
        return "2.1-beta5"
    return "2.1-beta2"


def preprocessing_steps(name: str, template: str) -> List[Tuple[str, dict]]:
    """(operation, arguments) of one preprocessing set, in order."""
    if name == "raw":  # Gaia's template: no transformation at all (String descriptors stay, not trainable)
        return []
    unused, strings = TEMPLATES[template]
    base = [("remove", {"patterns": unused}), ("enumerate", {"patterns": strings})]
    extra = {
        "basic": [],
        "lowlevel": [("select", {"patterns": ["lowlevel*"]})],
        "nobands": [("remove", {"patterns": BANDS})],
        "normalized": [("normalize", {})],
        "gaussianized": [("normalize", {}), ("gaussianize", {"patterns": GAUSSIANIZE})],
        "mfcc": [("select", {"patterns": ["lowlevel.mfcc*"]})],
    }[name]
    return base + extra
