"""Stage plot (the figures themselves are in :mod:`rnnad.plots`)."""

from __future__ import annotations

from pathlib import Path

from rnnad.config import Params


def plot_stage(params: Params, processed_dir: Path, splits_path: Path, scores_dir: Path,
               curves_dir: Path, series_dir: Path, summary_dir: Path) -> None:
    # The work is in rnnad.plots, which dvc.yaml lists as a dependency of the plot stage.
    from rnnad.plots import plot_outputs

    plot_outputs(params.plot, params.window.length, processed_dir, splits_path, scores_dir,
                 curves_dir, series_dir, summary_dir)
