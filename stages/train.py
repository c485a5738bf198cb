"""DVC stage train: one encoder-decoder per series, early stopping, curves logged with dvclive."""

from pathlib import Path

from rnnad.cli import run_stage
from rnnad.pipeline.train import train_stage

if __name__ == "__main__":
    run_stage("train", lambda p: train_stage(p, Path("data/processed"),
                                             Path("data/split/splits.json"), Path("models"),
                                             Path("reports/train")))
