"""The SVG plots on their own: well-formed whatever the class names, one path per cell, marks present."""
import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from abserver.web import analysis, plots

SVG = "{http://www.w3.org/2000/svg}"


def _ids(svg: bytes):
    root = ET.fromstring(svg)
    return root, {e.get("id"): e for e in root.iter() if e.get("id")}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=40).filter(lambda t: t.strip()), min_size=2, max_size=6, unique=True))
def test_confusion_plot_takes_any_class_names(names):
    matrix = {a: {p: (5 if a == p else 1) for p in names} for a in names}
    svg = plots.confusion_svg(analysis.confusion(matrix, names))
    _, ids = _ids(svg)
    assert len(ids["confusion-cells"].findall(SVG + "path")) == len(names) ** 2
    assert b"<script" not in svg


def test_names_with_controls_surrogates_and_dollars_still_make_a_valid_svg():
    names = ["a\x00\x1b[31m", "b\ud800", "$\\frac{1}{0", "\u202eevil", "c" * 300]
    matrix = {n: {n: 2} for n in names}
    svg = plots.confusion_svg(analysis.confusion(matrix, names))
    _, ids = _ids(svg)
    assert len(ids["confusion-cells"].findall(SVG + "path")) == 25
    assert analysis.printable("b\ud800\x07") == "b\ufffd\\x07"


def test_grid_plot_has_a_cell_per_configuration_the_best_outlined_and_the_tie_band():
    c, g = [-5, -3, -1, 1, 3, 5, 7, 9, 11], [-11, -9, -7, -5, -3, -1, 1, 3]
    acc = [[50.0 + i + j for j in range(len(g))] for i in range(len(c))]
    acc[0][0] = None  # a failed configuration still has its (grey) cell
    panel = analysis.Panel("basic", "RBF", c, g, acc, (8, 7), [(8, 7), (8, 6), (7, 7)])
    _, ids = _ids(plots.grid_svg(panel, 50.0, 65.0))
    assert len(ids["grid-cells"].findall(SVG + "path")) == len(c) * len(g)
    assert "best-cell" in ids and "tie-band" in ids
    labels = [t.text for t in ET.fromstring(plots.grid_svg(panel, 50.0, 65.0)).iter(SVG + "text")]
    assert "2⁻¹¹" in labels and "2¹¹" in labels, "axes in powers of two"
