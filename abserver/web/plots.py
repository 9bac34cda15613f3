"""Server-side SVG plots drawn by matplotlib (Agg-free SVG backend, no display, no network).

Colour scales are perceptually uniform and colour-blind safe (cividis); axes show grid
values as powers of two. Cells are one ``QuadMesh`` whose SVG group has a stable id
(``grid-cells``, ``confusion-cells``), the best configuration is outlined (``best-cell``)
and Gaia's tie band is drawn as dots (``tie-band``), so tests and people find them.
"""
import io
import threading
import warnings
from typing import List, Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot-free figure use; never a GUI backend on a server

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from .analysis import TIE_BAND, ClassRow, Panel, exp2, printable  # noqa: E402

CMAP = "cividis"
_LOCK = threading.Lock()  # matplotlib's text layout caches are not thread-safe
_RC = {"svg.fonttype": "none", "svg.hashsalt": "abserver", "font.size": 9, "font.family": "DejaVu Sans",
       "svg.image_inline": True}
MAX_ANNOTATED = 144  # cells per panel up to which each cell shows its accuracy


def _svg(fig: Figure) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():  # a name's glyph missing from the font is drawn as a box, not logged
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        fig.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    return out.getvalue()


def _cmap():
    cmap = matplotlib.colormaps[CMAP].copy()
    cmap.set_bad("#d9d9d9")  # failed configurations: light grey, named in the caption
    return cmap


def grid_svg(panel: Panel, vmin: float, vmax: float) -> bytes:
    """Accuracy over C (rows) × γ (columns) for one preprocessing × kernel."""
    data = np.ma.masked_invalid(np.array([[np.nan if v is None else v for v in row] for row in panel.accuracy],
                                         dtype=float))
    rows, cols = data.shape
    with _LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(1.8 + 0.55 * cols, 1.3 + 0.4 * rows))
        ax = fig.add_subplot()
        mesh = ax.pcolormesh(data, cmap=_cmap(), vmin=vmin, vmax=max(vmax, vmin + 1e-9),
                             edgecolors="white", linewidth=0.5)
        mesh.set_gid("grid-cells")
        ax.set_xticks(np.arange(cols) + 0.5, [exp2(g) for g in panel.gamma_values])
        ax.set_yticks(np.arange(rows) + 0.5, [exp2(c) for c in panel.c_values])
        ax.set_xlabel("γ (gamma)")
        ax.set_ylabel("C")
        ax.set_title("%s, %s" % (panel.preprocessing, panel.kernel))
        ax.set_xlim(0, cols)
        ax.set_ylim(0, rows)
        if rows * cols <= MAX_ANNOTATED:
            for i in range(rows):
                for j in range(cols):
                    v = panel.accuracy[i][j]
                    if v is not None:
                        light = (v - vmin) / max(vmax - vmin, 1e-9) < 0.55
                        ax.text(j + 0.5, i + 0.5, "%.1f" % v, ha="center", va="center", fontsize=6.5,
                                color="white" if light else "black")
        if panel.ties:
            ties = ax.scatter([j + 0.82 for _, j in panel.ties], [i + 0.8 for i, _ in panel.ties], s=18,
                              marker="o", color="#d62728", edgecolors="white", linewidths=0.6,
                              label="within %g point of the best" % TIE_BAND)
            ties.set_gid("tie-band")
        if panel.best is not None:
            i, j = panel.best
            ax.add_patch(Rectangle((j + 0.04, i + 0.04), 0.92, 0.92, fill=False, edgecolor="#d62728",
                                   linewidth=2.2, gid="best-cell", label="best configuration"))
        cbar = fig.colorbar(mesh, ax=ax, fraction=0.06, pad=0.03)
        cbar.set_label("accuracy (%)")
        return _svg(fig)


def confusion_svg(rows: Sequence[ClassRow]) -> bytes:
    """Counts coloured by the share of the actual class (row-normalised, so recall is the diagonal)."""
    names = [r.name for r in rows]
    n = len(names)
    share = np.array([[c / r.total if r.total else np.nan for c in r.counts] for r in rows], dtype=float)
    with _LOCK, matplotlib.rc_context(_RC):
        size = 1.8 + 0.55 * n
        fig = Figure(figsize=(size + 1.0, size))
        ax = fig.add_subplot()
        mesh = ax.pcolormesh(np.ma.masked_invalid(share), cmap=_cmap(), vmin=0.0, vmax=1.0,
                             edgecolors="white", linewidth=0.5)
        mesh.set_gid("confusion-cells")
        ax.set_xticks(np.arange(n) + 0.5, _short(names), rotation=45, ha="right")
        ax.set_yticks(np.arange(n) + 0.5, _short(names))
        ax.invert_yaxis()
        ax.set_xlabel("predicted class")
        ax.set_ylabel("actual class")
        if n <= 20:
            for i, r in enumerate(rows):
                for j, c in enumerate(r.counts):
                    ax.text(j + 0.5, i + 0.5, str(c), ha="center", va="center", fontsize=8,
                            color="white" if (share[i, j] if r.total else 0) < 0.55 else "black")
        cbar = fig.colorbar(mesh, ax=ax, fraction=0.05, pad=0.03)
        cbar.set_label("share of the actual class")
        return _svg(fig)


def _short(names: Sequence[str], limit: int = 24) -> List[str]:
    """Class names as axis labels: shortened, characters XML cannot hold made visible
    (controls as ``\\xNN``, lone surrogates as U+FFFD), '$' escaped so no name is mathtext."""
    return [printable(n if len(n) <= limit else n[:limit - 1] + "…").replace("$", r"\$") for n in names]
