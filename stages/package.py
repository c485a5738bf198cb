"""DVC stage package: ONNX export checked against torch, BentoML model and Bento, report."""

import os
from pathlib import Path

from rnnad.cli import run_stage
from rnnad.pipeline.package import package_stage

if __name__ == "__main__":
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    run_stage("package", lambda p: package_stage(
        p, Path("data/processed"), Path("data/split/splits.json"), Path("models"),
        Path("data/scores"), Path("data/package"), Path("reports/package.json")))
