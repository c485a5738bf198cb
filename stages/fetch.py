"""DVC stage fetch: download (or copy from RNNAD_DATA_MIRROR) the dataset data.dataset names,
checksums verified, into data/raw/<dataset folder>."""

from rnnad.cli import run_stage
from rnnad.pipeline.prepare import fetch_stage

if __name__ == "__main__":
    run_stage("fetch", fetch_stage)
