"""Every figure kind, drawn with long labels, keeps its legends inside the saved canvas."""

from __future__ import annotations

import dataclasses

import numpy as np

from ffenergy.analysis.load import load_run
from ffenergy.plot import compare
from ffenergy.plot.run_figures import RUN_FIGURES
from ffenergy.plot.style import Drawn, agg_renderer, fit_legends
from tests.plot.plot_synthetic import write_synthetic_run

LONG = "a-target-whose-name-is-much-longer-than-any-margin-allows-for-0123456789"


def _long_labels(run):
    rename = {"host-cpu": LONG, "mcu-sim": LONG + "-mcu"}
    run.summary = [dataclasses.replace(r, target=rename.get(r.target, r.target)) for r in run.summary]
    run.fits = [dataclasses.replace(f, target=rename.get(f.target, f.target)) for f in run.fits]
    run.sweep = [dataclasses.replace(s, target=rename.get(s.target, s.target)) for s in run.sweep]
    if run.samples is not None:
        run.samples.target = np.array([rename.get(t, t) for t in run.samples.target])
    return run


def _legends_inside(drawn: Drawn) -> None:
    fig = drawn.figure
    fit_legends(fig)
    renderer = agg_renderer(fig)
    legends = [lg for lg in (*(ax.get_legend() for ax in fig.axes), *fig.legends) if lg is not None]
    for lg in legends:
        box = lg.get_window_extent(renderer)
        assert box.x0 >= -0.5 and box.y0 >= -0.5, (drawn.stem, box)
        assert box.x1 <= fig.bbox.width + 0.5 and box.y1 <= fig.bbox.height + 0.5, (drawn.stem, box, fig.bbox)


def test_every_figure_kind_keeps_its_legends_on_the_canvas(tmp_path):
    runs = [
        _long_labels(load_run(write_synthetic_run(tmp_path, f"run-{k}-{LONG}", n_samples=60, seed=k))) for k in range(2)
    ]
    drawn = [d for draw in RUN_FIGURES for d in draw(runs[0]) if isinstance(d, Drawn)]
    drawn += [d for d in compare.draw(runs) if isinstance(d, Drawn)]
    assert len({d.stem.split("_")[0] for d in drawn}) >= 5  # the figure kinds are all there
    with_legend = 0
    for d in drawn:
        with_legend += any(ax.get_legend() for ax in d.figure.axes) or bool(d.figure.legends)
        _legends_inside(d)
    assert with_legend >= 4
