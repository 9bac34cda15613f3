"""Small byte vectors and chains shared by the Gaia history tests."""
from abrunnerd.gaia.chain import REAL, VARIABLE, Descriptor, Layout, Step, StringList

# gaia-transform-output.md §6: remove `b` from {a, b}, 276 bytes, Essentia's self-test.
# Defined once, in the oracle worker, which must stay importable without abrunnerd.
from oracle_worker import SELF_TEST_HEX  # noqa: E402,F401


def remove_b_step() -> Step:
    layout = Layout([Descriptor(".a", REAL, VARIABLE), Descriptor(".b", REAL, VARIABLE)])
    return Step("remove", "removedesc", {"descriptorNames": StringList(["b"])},
                {"descriptorNames": StringList([".b"])}, {}, layout)
