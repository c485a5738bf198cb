"""DVC stage evaluate: causal per-point scores, validation thresholds, metrics and curves."""

from pathlib import Path

from rnnad.cli import run_stage
from rnnad.pipeline.evaluate import evaluate_stage
from rnnad.pipeline.prepare import RAW_ROOT

if __name__ == "__main__":
    run_stage("evaluate", lambda p: evaluate_stage(
        p, Path("data/processed"), Path("data/split/splits.json"), Path("models"),
        Path("data/scores"), Path("reports/metrics.json"), Path("reports/curves"),
        raw_root=RAW_ROOT, nab_results_dir=Path("reports/nab_results")))
