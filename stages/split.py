"""DVC stage split: chronological train/validation/test boundaries and training-only scalers."""

from pathlib import Path

from rnnad.cli import run_stage
from rnnad.pipeline.prepare import split_stage

if __name__ == "__main__":
    run_stage("split", lambda p: split_stage(p, Path("data/processed"),
                                             Path("data/split/splits.json")))
