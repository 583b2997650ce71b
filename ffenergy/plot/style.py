"""Shared figure plumbing: Agg figures without pyplot state, provenance badges, energy units."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

DPI = 100
# Procedures get colours and markers by their order in the run (the config's order), so a new
# learner needs no entry here.
_PALETTE = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*")
_BADGE_COLORS = {"measured": "#2e7d32", "estimated": "#ef6c00", "simulated": "#6a1b9a"}


@dataclass
class Drawn:
    """A figure ready to save: ``stem`` is its file name without extension."""

    stem: str
    caption: str
    figure: Figure


@dataclass(frozen=True)
class Skipped:
    """A figure that could not be drawn, and why (shown in report.md)."""

    what: str
    reason: str


def new_figure(
    width: float = 7.0,
    height: float = 4.5,
    *,
    right_in: float = 0.2,
    bottom_in: float = 0.62,
    top_in: float = 0.62,
    wspace: float = 0.35,
    hspace: float = 0.5,
) -> Figure:
    """A figure on the Agg canvas; it is garbage collected when dropped (no pyplot registry).

    Margins are fixed in inches (room for tick labels, axis labels and the two-line title) instead
    of a layout engine, which would cost a quarter of the drawing time.
    """
    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.subplots_adjust(
        left=0.8 / width,
        right=1 - right_in / width,
        bottom=bottom_in / height,
        top=1 - top_in / height,
        wspace=wspace,
        hspace=hspace,
    )
    return fig


def procedure_label(procedure: str) -> str:
    """A procedure as figures name it: its registry name, as in the config and result files."""
    return procedure


def _position(procedure: str, procedures: Sequence[str]) -> int:
    return list(procedures).index(procedure) if procedure in procedures else len(procedures)


def procedure_color(procedure: str, procedures: Sequence[str]) -> str:
    """The colour of ``procedure`` among the run's ``procedures`` (in their order)."""
    return _PALETTE[_position(procedure, procedures) % len(_PALETTE)]


def procedure_marker(procedure: str, procedures: Sequence[str]) -> str:
    return _MARKERS[_position(procedure, procedures) % len(_MARKERS)]


def badge(fig: Figure, provenance: str) -> None:
    """Stamp the provenance (measured / estimated / simulated, or the MAC fallback) on a figure."""
    color = next((c for key, c in _BADGE_COLORS.items() if provenance.startswith(key)), "#555555")
    fig.text(
        0.995,
        0.995,
        provenance,
        ha="right",
        va="top",
        fontsize=9,
        fontweight="bold",
        color="white",
        bbox={"boxstyle": "round,pad=0.3", "facecolor": color, "edgecolor": "none"},
    )


def title(fig: Figure, what: str, *context: str) -> None:
    """A left-aligned two-line figure title (what; dataset · target · meter) clear of the badge."""
    fig.suptitle(f"{what}\n{' · '.join(c for c in context if c)}", x=0.01, y=0.99, ha="left", va="top", fontsize=10)


def log_axis(ax: Axes, which: str) -> None:
    """Log scale on ``which`` ("x" or "y") with plain tick labels (1, 2, 5, 10, ...), not powers of ten."""
    getattr(ax, f"set_{which}scale")("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def warn_nonpositive(fig: Figure, joules: Sequence[float | None] | np.ndarray) -> None:
    """Flag net energies <= 0 under the badge: the idle subtraction ate the signal, so they are not costs."""
    values = np.asarray([np.nan if v is None else v for v in joules], dtype=float)
    if np.any(values <= 0):
        fig.text(
            0.995,
            0.955,
            "⚠ net energy ≤ 0 in some modes: idle subtraction exceeds\n"
            "the signal (windows too short, idle drift); not real costs",
            ha="right",
            va="top",
            fontsize=7.5,
            color="#b71c1c",
        )


def mac_unit(values: np.ndarray | list[float]) -> tuple[float, str]:
    """(scale, label) for MAC counts: k, M or G MACs."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    typical = float(np.median(finite)) if finite.size else 1.0
    return next(((s, u) for s, u in ((1e9, "G MACs"), (1e6, "M MACs"), (1e3, "k MACs")) if typical >= s), (1.0, "MACs"))


def agg_renderer(fig: Figure) -> Any:
    """The Agg renderer of ``fig`` (attaching an Agg canvas to a figure made without one)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    return canvas.get_renderer()


def fit_legends(fig: Figure, pad_px: float = 4.0, rounds: int = 4) -> None:
    """Grow the canvas so that every legend lies inside it, keeping the axes' size and place on the page.

    Legends beside the axes (``bbox_to_anchor`` outside them) used to be clipped at the canvas edge when their
    labels were long; the fixed margins of ``new_figure`` cannot know a label's length in advance. A legend
    placed "best" may move when the canvas grows, so the fit is repeated until nothing sticks out.
    """
    legends = [lg for lg in (*(ax.get_legend() for ax in fig.axes), *fig.legends) if lg is not None]
    for _ in range(rounds if legends else 0):
        renderer = agg_renderer(fig)
        width, height = fig.bbox.width, fig.bbox.height
        boxes = [lg.get_window_extent(renderer) for lg in legends]
        left = max(0.0, pad_px - min(b.x0 for b in boxes))
        right = max(0.0, max(b.x1 for b in boxes) + pad_px - width)
        bottom = max(0.0, pad_px - min(b.y0 for b in boxes))
        top = max(0.0, max(b.y1 for b in boxes) + pad_px - height)
        if max(left, right, bottom, top) < 0.5:
            return
        places = {ax: ax.get_position().transformed(fig.transFigure) for ax in fig.axes}  # pixels
        new_w, new_h = width + left + right, height + bottom + top
        fig.set_size_inches(new_w / fig.dpi, new_h / fig.dpi)
        for ax, box in places.items():
            ax.set_position(((box.x0 + left) / new_w, (box.y0 + bottom) / new_h, box.width / new_w, box.height / new_h))


def save(drawn: Drawn, directory: Path, fmt: str) -> Path:
    """Write a figure as ``directory/stem.fmt`` (legends fitted inside the canvas) and return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    fit_legends(drawn.figure)
    path = directory / f"{drawn.stem}.{fmt}"
    extra: dict[str, Any] = (
        {"pil_kwargs": {"compress_level": 3}} if fmt == "png" else {}
    )  # level 6 costs a fifth of the time
    drawn.figure.savefig(path, format=fmt, dpi=DPI, **extra)
    return path


def slug(text: str) -> str:
    """A file-name-safe version of a target or meter name."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text) or "none"
