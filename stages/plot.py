"""DVC stage plot: one PNG per series, and the README's ROC/PR and showcase figures."""

from pathlib import Path

from rnnad.cli import run_stage
from rnnad.pipeline.plot import plot_stage

if __name__ == "__main__":
    run_stage("plot", lambda p: plot_stage(
        p, Path("data/processed"), Path("data/split/splits.json"), Path("data/scores"),
        Path("reports/curves"), Path("reports/plots/series"), Path("reports/plots/summary")))
