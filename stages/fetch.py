"""DVC stage fetch: download (or copy from RNNAD_DATA_MIRROR) the NAB corpus, checksums verified."""

from pathlib import Path

from rnnad.cli import run_stage
from rnnad.pipeline.prepare import fetch_stage

if __name__ == "__main__":
    run_stage("fetch", lambda p: fetch_stage(p, Path("data/raw/nab")))
