"""Run the whole pipeline on each dataset and save its metrics for the README's tables.

Usage, from the repository root (the mirror as for ``make run``)::

    export RNNAD_DATA_MIRROR=../shared/datasets
    .venv/bin/python benchmarks/datasets.py smap msl cmapss kddcup99 csv

For each dataset: a scratch copy of the project (what ``dvc.yaml`` refers to, as the tests'
``tests/scratch.py`` makes it) in a temporary directory, ``data.dataset`` set there,
``dvc repro`` (what ``dvc exp run -S data.dataset=X`` does, without touching this workspace's
params, lock or reports), then ``reports/metrics.json`` of that run saved as
``reports/datasets/X.json`` here, and the README's dataset tables regenerated. The package
stage saves each detector as ``rnnad_X`` in ``$BENTOML_HOME``. Extra ``-S key=value`` pairs
apply to every run; ``--keep`` keeps the scratch projects (a failed one is always kept);
``--telemetry`` runs SMAP and MSL with the settings the README's tables use for them
(:data:`TELEMETRY`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from scratch import copy_project, scratch_env, set_params  # noqa: E402

# SMAP/MSL (Hundman et al. 2018's setting: labelled anomalous sequences in the test arrays,
# event-wise F1): the RNN's raw errors smoothed, then the nonparametric dynamic threshold on
# each channel's test errors, instead of NAB's streaming likelihood and alarm level. Chosen on
# MSL's event F1 (smooth 0/10/30/100, prune 0/0.13, z_min 0.5-3, one window or windows of
# 1000-4000 points; the buffer is telemanom's 100: wider ones inflate event hits); SMAP was
# not looked at before the choice.
TELEMETRY: dict[str, object] = {
    "evaluate.postprocess.likelihood.window": 0, "evaluate.postprocess.spatial": 0,
    "evaluate.postprocess.suppress": 0, "evaluate.postprocess.smooth": 10,
    "evaluate.threshold.method": "dynamic", "evaluate.threshold.dynamic.buffer": 100,
    "evaluate.threshold.dynamic.prune": 0.0, "evaluate.threshold.dynamic.z_min": 1.0,
}


def run(dataset: str, overrides: dict[str, object], keep: bool) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"rnnad-{dataset}-"))
    copy_project(root)
    mirror = os.environ.get("RNNAD_DATA_MIRROR", "").strip()
    # the tests' scratch environment, but this user's HOME and BentoML store: the packaged
    # detectors (rnnad_<dataset>) are meant to be served afterwards
    env = {**scratch_env(root, (REPO / mirror).resolve() if mirror else Path()),
           "HOME": os.environ.get("HOME", str(Path.home())),
           "BENTOML_HOME": os.environ.get("BENTOML_HOME", str(Path.home() / "bentoml"))}
    if not mirror:  # no mirror: fetch downloads from upstream
        env.pop("RNNAD_DATA_MIRROR")
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=root, env=env,
                   check=True)
    set_params(root, {"data.dataset": dataset, **overrides})
    start = time.perf_counter()
    with (root / "repro.log").open("w") as log:
        proc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=root, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (root / "repro.log").read_text().splitlines()[-30:]
        raise SystemExit(f"{dataset}: dvc repro failed ({proc.returncode}), log in "
                         f"{root / 'repro.log'}:\n" + "\n".join(tail))
    print(f"{dataset}: dvc repro took {seconds:.0f} s ({root})")
    subprocess.run([sys.executable, "-m", "rnnad.report", str(REPO / "README.md"),
                    "--metrics", str(root / "reports/metrics.json"), "--datasets",
                    str(REPO / "reports/datasets"), "--save-dataset"], check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+",
                        choices=["nab", "smap", "msl", "cmapss", "kddcup99", "csv"])
    parser.add_argument("-S", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="a params override (YAML value)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch projects")
    parser.add_argument("--telemetry", action="store_true",
                        help="SMAP and MSL with the telemetry settings (TELEMETRY, chosen on "
                             "MSL): smoothed raw errors and dynamic thresholds")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.overrides:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    for dataset in args.datasets:
        extra = TELEMETRY if args.telemetry and dataset in ("smap", "msl") else {}
        run(dataset, {**extra, **overrides}, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
