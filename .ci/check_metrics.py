"""Fail when `dvc metrics diff --json` (read on stdin) shows a change beyond the tolerance.

Tolerance: 0.02 absolute on every overall rate (reports/metrics.json
`detectors.<name>.overall.*`), 0.5 on NAB scores (0-100 scale), 0.05 absolute on per-series
rates, 5% relative on counts and thresholds; data sizes exactly. On the machine that produced the
committed metrics the pipeline is bitwise reproducible; the tolerance allows for another CPU's
floating-point order.
"""

import json
import sys

OVERALL_TOL = 0.02
PER_SERIES_TOL = 0.05
NAB_TOL = 0.5
COUNT_REL_TOL = 0.05


def main() -> int:
    diff = json.load(sys.stdin)
    failures = []
    for path, metrics in diff.items():
        for key, change in metrics.items():
            old, new = change.get("old"), change.get("new")
            if old is None and new is None:
                continue
            if not isinstance(old, int | float) or not isinstance(new, int | float):
                if old != new:
                    failures.append(f"{path}:{key}: {old!r} -> {new!r}")
                continue
            if ".overall." in key:
                tol = OVERALL_TOL
            elif ".nab." in key:
                tol = NAB_TOL
            else:
                tol = PER_SERIES_TOL
            last = key.rsplit(".", 1)[-1]
            if last in ("points", "anomalous", "series"):
                tol = 0  # data sizes must match exactly
            elif last.startswith(("flagged", "true_positives", "threshold", "event_tp",
                                  "event_fp", "event_fn")):
                tol = COUNT_REL_TOL * max(abs(old), 1)  # counts and thresholds: relative
            if abs(new - old) > tol:
                failures.append(f"{path}:{key}: {old} -> {new} (tolerance {tol})")
    if failures:
        print("metrics differ from the committed ones:\n  " + "\n  ".join(failures))
        return 1
    print("metrics match the committed ones within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
