"""DVC stage preprocess: parse and validate the selected series, build per-point labels."""

from pathlib import Path

from rnnad.cli import run_stage
from rnnad.pipeline.prepare import RAW_ROOT, preprocess_stage

if __name__ == "__main__":
    run_stage("preprocess", lambda p: preprocess_stage(p, RAW_ROOT, Path("data/processed")))
