"""Flattening, patterns, merge and every preprocessing set, pinned on hand-computed cases."""
import numpy as np
import pytest
from scipy.special import erfinv

from abrunnerd.gaia import numeric
from abrunnerd.gaia.chain import ENUM, FIXED, REAL, STRING, VARIABLE
from abrunnerd.trainer import DatasetError
from abrunnerd.trainer import appliers
from abrunnerd.trainer.flatten import flatten_document
from abrunnerd.trainer.merge import merge_documents
from abrunnerd.trainer.patterns import PatternError, resolve
from abrunnerd.trainer.preprocessing import apply_preprocessing
from trainer_synth import tiny_documents, variant

f32 = np.float32


# --- flattening (spec §3) ---

def test_flatten_types_matrices_and_names():
    flat = flatten_document({"lowlevel": {"mfcc": {"mean": [1, 2.5], "cov": [[1, 2], [3, 4]]}, "zcr": 0.25,
                                          "empty": []},
                             "tonal": {"key_key": "C", "chords": ["A", "B"]}, "metadata": {"lossless": True},
                             "segments": {"x": 1}}, "m1")
    assert flat[".lowlevel.mfcc.mean"][0] == REAL
    assert flat[".lowlevel.mfcc.mean"][1].dtype == np.float32
    assert flat[".lowlevel.mfcc.cov"][1].tolist() == [2, 2, 1, 2, 3, 4]  # [rows, cols, row-major]
    assert flat[".lowlevel.zcr"][1].tolist() == [0.25]
    assert flat[".lowlevel.empty"][1].size == 0
    assert flat[".tonal.key_key"] == (STRING, ["C"])
    assert flat[".tonal.chords"] == (STRING, ["A", "B"])
    assert ".metadata.lossless" not in flat  # booleans have no stable Gaia type: left out
    assert not any(n.startswith(".segments") for n in flat)  # Gaia ignores this top-level key


@pytest.mark.parametrize("value, words", [
    (float("nan"), "nan"), (float("inf"), "inf"), (1e39, "1e+39"), ([1, "a"], "mixes"),
    ([[1, 2], [3]], "rows of different lengths"), ({"a": [{}]}, "cannot read")])
def test_flatten_rejects_untrainable_values_naming_recording_and_descriptor(value, words):
    with pytest.raises(DatasetError) as e:
        flatten_document({"lowlevel": {"bad": value}}, "rec-1")
    assert "rec-1" in str(e.value) and "lowlevel.bad" in str(e.value) and words in str(e.value)


# --- patterns (spec §5) ---

NAMES = [".lowlevel.barkbands.mean", ".lowlevel.barkbands_crest.var", ".lowlevel.mfcc.cov", ".lowlevel.mfcc.icov",
         ".lowlevel.mfcc.mean", ".lowlevel.spectral_centroid.min", ".tonal.thpcp", ".tonal.thpcp_x.mean",
         ".metadata.version.essentia"]


@pytest.mark.parametrize("pattern, expected", [
    ("*cov", [".lowlevel.mfcc.cov", ".lowlevel.mfcc.icov"]),
    ("*.min", [".lowlevel.spectral_centroid.min"]),
    ("lowlevel*", [n for n in NAMES if n.startswith(".lowlevel")]),
    ("tonal.thpcp", [".tonal.thpcp"]),
    ("barkbands*", [".lowlevel.barkbands.mean", ".lowlevel.barkbands_crest.var"]),
    ("metadata.*", [".metadata.version.essentia"]),
    (".tonal.thpcp", [".tonal.thpcp"]),
    ("mfcc.m?an", [".lowlevel.mfcc.mean"]),
    ("mfcc.[ic]*", [".lowlevel.mfcc.cov", ".lowlevel.mfcc.icov"]),
])
def test_pattern_semantics(pattern, expected):
    assert resolve([pattern], NAMES) == expected


def test_pattern_errors_and_order():
    with pytest.raises(PatternError, match="ambiguous"):
        resolve(["mean"], NAMES)
    with pytest.raises(PatternError, match="didn't match"):
        resolve(["nothing*"], NAMES)
    assert resolve(["*"], []) == []
    # pattern by pattern, then except
    assert resolve(["tonal.thpcp", "*cov"], NAMES, excepts=["*icov"]) == [".tonal.thpcp", ".lowlevel.mfcc.cov"]


# --- merge (spec §4) ---

def test_merge_removes_vl_and_constant_and_records_two_steps():
    merged = merge_documents(tiny_documents())
    assert merged.frame.ids == ["a", "b", "c"]
    assert merged.removed == [".metadata.audio_properties.length", ".rhythm.beats_position", ".rhythm.constant"]
    remove, fixlength = merged.steps
    assert (remove.analyzer, remove.applier) == ("remove", "removedesc")
    assert list(remove.params["descriptorNames"]) == merged.removed
    assert all(d.length_type == VARIABLE and d.size == 1 for d in remove.input_layout.descriptors)
    assert len(remove.input_layout.descriptors) == len(merged.frame.values) + 3
    assert (fixlength.analyzer, fixlength.applier) == ("fixlength", "fixlengthapplier")
    assert list(fixlength.params["descriptorNames"]) == sorted(merged.frame.values)
    assert merged.frame.values[".lowlevel.mfcc.cov"][0].tolist() == [2, 2, 1, 0, 0, 1]
    assert merged.frame.layout().get(".lowlevel.barkbands.mean").length_type == FIXED
    assert merged.dropped == {}


def test_merge_trains_on_common_descriptors_and_reports_dropped():
    docs = tiny_documents()
    docs["b"] = variant(docs["b"], lowlevel__extra=1.0)
    docs["c"] = variant(docs["c"], rhythm__bpm=None)
    merged = merge_documents(docs)
    assert merged.dropped == {".lowlevel.extra": ["a", "c"], ".rhythm.bpm": ["c"]}
    assert ".rhythm.bpm" not in merged.frame.values


# --- preprocessing sets (spec §6, §7) ---

def _prep(name, docs=None):
    merged = merge_documents(docs or tiny_documents())
    steps, frame = apply_preprocessing(merged.frame, name, "2.1-beta2", merged.dropped)
    return steps, frame


BASIC_KEPT = [".lowlevel.barkbands.mean", ".lowlevel.erbbands.mean", ".lowlevel.melbands.mean",
              ".lowlevel.mfcc.mean", ".lowlevel.spectral_centroid.mean", ".lowlevel.spectral_centroid.var",
              ".lowlevel.spectral_energyband_low.mean", ".rhythm.bpm", ".tonal.chords_histogram",
              ".tonal.chords_key", ".tonal.chords_scale", ".tonal.key_key", ".tonal.key_scale"]


def test_basic_removes_unused_and_enumerates_strings_in_first_appearance_order():
    steps, frame = _prep("basic")
    assert [s.analyzer for s in steps] == ["remove", "enumerate"]
    assert list(steps[0].params["descriptorNames"]) == [
        ".metadata.version.essentia", ".lowlevel.spectral_centroid.dmean", ".lowlevel.spectral_centroid.dvar",
        ".lowlevel.spectral_centroid.min", ".lowlevel.spectral_centroid.max", ".lowlevel.mfcc.cov", ".tonal.thpcp",
        ".lowlevel.spectral_energyband_high.mean", ".lowlevel.silence_rate_60dB.mean"]
    assert frame.names() == BASIC_KEPT
    assert list(steps[1].params["descriptorNames"]) == [".tonal.chords_key", ".tonal.chords_scale",
                                                         ".tonal.key_key", ".tonal.key_scale"]
    assert frame.enum_maps[".tonal.key_key"] == ["C", "D"]  # a: C, b: D, c: D
    assert frame.enum_maps[".tonal.key_scale"] == ["major", "minor"]
    assert frame.values[".tonal.key_key"].ravel().tolist() == [0, 1, 1]
    assert frame.types[".tonal.key_key"] == ENUM
    assert frame.layout().enum_maps[".tonal.key_key"] == ["C", "D"]  # carried in the layout


def test_lowlevel_and_nobands_and_mfcc_select_by_pattern():
    _, low = _prep("lowlevel")
    assert low.names() == [n for n in BASIC_KEPT if n.startswith(".lowlevel")]
    steps, nob = _prep("nobands")
    assert list(steps[-1].params["descriptorNames"]) == [".lowlevel.barkbands.mean",
                                                         ".lowlevel.spectral_energyband_low.mean",
                                                         ".lowlevel.melbands.mean", ".lowlevel.erbbands.mean"]
    assert nob.names() == [n for n in BASIC_KEPT if "bands" not in n and "energyband" not in n]
    _, mfcc = _prep("mfcc")
    assert mfcc.names() == [".lowlevel.mfcc.mean"]


def test_normalized_uses_one_range_per_descriptor_in_float32():
    steps, frame = _prep("normalized")
    norm = steps[-1]
    assert (norm.analyzer, norm.applier, norm.analyzer_params) == ("normalize", "dotproduct", {})
    assert norm.params["applyClipping"] is False
    bark = norm.params["coeffs"][".lowlevel.barkbands.mean"]  # values 1,2 / 3,6 / 5,4: m=1, M=6
    assert bark["a"] == [float(f32(1) / f32(5))] * 2 and bark["b"] == [float(f32(-1) / f32(5))] * 2
    expected = (np.array([[1, 2], [3, 6], [5, 4]], np.float32) * f32(0.2)).astype(np.float32) + f32(-0.2)
    assert np.array_equal(frame.values[".lowlevel.barkbands.mean"], expected)
    assert ".tonal.key_key" not in norm.params["coeffs"]  # enums are not normalised
    info = norm.info[".lowlevel.barkbands.mean"]
    assert info["mean"] == pytest.approx([3.0, 4.0]) and info["var"] == pytest.approx([4.0, 4.0])


def test_gaussianized_ranks_lowlevel_dimensions_with_gaias_inverf():
    steps, frame = _prep("gaussianized")
    gauss = steps[-1]
    assert (gauss.analyzer, gauss.applier) == ("gaussianize", "distribute")
    keys = sorted(gauss.params["distribution"])
    assert ".lowlevel.barkbands.mean[1]" in keys and not any(k.startswith(".rhythm") for k in keys)
    dist = gauss.params["distribution"][".lowlevel.barkbands.mean[0]"].to_array()
    assert dist.tolist() == pytest.approx([0.0, 0.4, 0.8])  # sorted normalised values 1, 3, 5 -> 0, .4, .8
    # ranks of 0, .4, .8 are 1, 2, 3 -> clamped to 1, 2, 2 (rank n becomes n-1)
    q = [f32(1) / f32(3), f32(2) / f32(3), f32(2) / f32(3)]
    expected = [f32(erfinv(2.0 * float(x) - 1.0)) for x in q]
    assert frame.values[".lowlevel.barkbands.mean"][:, 0].tolist() == pytest.approx(expected, abs=1e-7)


def test_unmatched_template_pattern_names_pattern_template_and_recording():
    docs = tiny_documents()
    docs["c"] = variant(docs["c"], tonal__key_key=None)
    with pytest.raises(DatasetError) as e:
        _prep("basic", docs)
    msg = str(e.value)
    assert "tonal.key_key" in msg and "2.1-beta2" in msg and "basic" in msg and "recording(s) lack it, e.g. c" in msg


# --- appliers ---

def test_distribute_rule_edges():
    d = np.array([1, 2, 2, 4], np.float32)
    x = np.array([0, 1, 2, 3, 4, 5], np.float32)
    out = numeric.distribute(x, d)
    ranks = [1, 1, 3, 3, 3, 3]  # below -> 0 -> 1; ==D[0] -> 1; ties go above; ==D[n-1] -> n-1; above -> n -> n-1
    exp = [f32(erfinv(2.0 * float(f32(r) / f32(4)) - 1.0)) for r in ranks]
    assert out.tolist() == pytest.approx(exp, abs=1e-7)


def test_enumerate_unseen_strings_get_next_codes_per_point():
    from abrunnerd.trainer.frame import Frame

    frame = Frame(["p", "q"], {".k": np.array([["C", "X", "Y", "X"], ["Y", "D", "C", "C"]], dtype=object)},
                  {".k": STRING})
    out = appliers.enumerate_strings(frame, [".k"], {".k": ["C", "D"]})
    assert out.values[".k"].tolist() == [[0, 2, 3, 2], [2, 1, 0, 0]]


def test_dot_product_is_float32_multiply_then_add():
    from abrunnerd.trainer.frame import Frame

    x = np.array([[0.1, 1e8]], np.float32)
    frame = Frame(["p"], {".r": x}, {".r": REAL})
    out = appliers.dot_product(frame, {".r": {"a": [3.0, 1.0 / 3], "b": [0.7, -1.0]}})
    expected = (x * np.array([3.0, 1.0 / 3], np.float32)).astype(np.float32) + np.array([0.7, -1.0], np.float32)
    assert out.values[".r"].dtype == np.float32 and np.array_equal(out.values[".r"], expected)


def test_template_is_chosen_by_layout_not_version():
    from abrunnerd.trainer.templates import choose_template

    assert choose_template([".tonal.key_key", ".metadata.version.essentia"]) == "2.1-beta2"
    assert choose_template([".tonal.key_edma.key", ".rhythm.bpm_histogram"]) == "2.1-beta5"
    docs = tiny_documents()
    for d in docs.values():
        d["metadata"]["version"]["essentia"] = "2.1-beta6-dev"  # like ab-real-1: newer version, old layout
    merged = merge_documents(docs)
    assert choose_template([d.name for d in merged.raw_layout.descriptors]) == "2.1-beta2"


def test_eta_counts_the_time_before_the_first_cell():
    """Kernel set-up before the first cell is part of the rate (it recurs in every unit)."""
    from abrunnerd.trainer.progress import EtaClock

    now = [100.0]
    clock = EtaClock(clock=lambda: now[0])
    now[0] = 110.0  # 10 s of kernel matrices, then two cells at once
    clock.tick()
    assert clock.eta(98) is None
    clock.tick()
    assert clock.eta(98) == 490.0  # 10 s / 2 cells * 98 remaining
