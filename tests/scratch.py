"""Scratch DVC projects for the integration tests: a copy of what ``dvc.yaml`` refers to
(dvc.yaml, params.yaml, .dvcignore, stages/, src/ and every other source file a stage depends
on) in a fresh directory, the copied library on PYTHONPATH, so the code that runs is the code
DVC hashes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
GENERATED_ROOTS = ("data", "models", "reports")


def dvc_stages() -> dict[str, Any]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def resolve(text: str, params_path: Path = REPO / "params.yaml") -> str:
    """``${data.csv.path}`` (DVC templating) -> its value in params.yaml."""
    params = yaml.safe_load(params_path.read_text())

    def value(match: re.Match[str]) -> str:
        node: Any = params
        for key in match.group(1).split("."):
            node = node[key]
        return str(node)

    return re.sub(r"\$\{\s*([\w.]+)\s*\}", value, text)


def source_deps(stage: dict[str, Any]) -> list[str]:
    """A stage's dependencies that are source files, not outputs of another stage (templated
    paths resolved against params.yaml)."""
    deps = [resolve(d if isinstance(d, str) else next(iter(d))) for d in stage.get("deps", [])]
    return [d for d in deps if d.split("/")[0] not in GENERATED_ROOTS]


def copy_project(root: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in ("stages", "src"):
        shutil.copytree(REPO / folder, root / folder, ignore=ignore)
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy2(REPO / name, root / name)
    for stage in dvc_stages().values():  # top-level files a stage depends on (bentofile.yaml)
        for dep in source_deps(stage):
            src = REPO / dep
            if src.is_file() and not (root / dep).exists():
                (root / dep).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, root / dep)


def scratch_env(root: Path, mirror: Path) -> dict[str, str]:
    """The environment of a stage run in ``root``: its own HOME, BentoML home and DVC site
    cache next to it, the dataset mirror, no analytics."""
    home = root.parent / f"{root.name}-home"
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(root / "src"),
        "RNNAD_DATA_MIRROR": str(mirror),
        "BENTOML_HOME": str(home / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
        "HOME": str(home),
    }


def set_params(root: Path, updates: dict[str, Any]) -> None:
    """Set dotted keys (``train.epochs``) in ``root/params.yaml``."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in updates.items():
        node = params
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def run_dvc(root: Path, env: dict[str, str], *args: str,
            check: bool = True) -> subprocess.CompletedProcess:
    """``python -m dvc ARGS`` in ``root``; a failure fails the test with DVC's output."""
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n"
                    f"{proc.stderr}")
    return proc
