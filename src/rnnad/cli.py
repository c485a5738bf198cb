"""Shared entry for stage scripts: logging, params, and clean one-line errors for bad input."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from rnnad.config import Params, ParamsError, load_params
from rnnad.datasets.fetch import FetchError
from rnnad.datasets.series import DataError

# Errors caused by input or configuration: print the message, not a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ParamsError, FetchError, DataError, ValueError, OverflowError,
)


def run_stage(name: str, body: Callable[[Params], None], params_path: str = "params.yaml") -> None:
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(levelname)s %(message)s")
    try:
        body(load_params(params_path))
    except USER_ERRORS as exc:
        print(f"rnnad {name}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except RuntimeError as exc:  # FetchError/TrainingError subclasses included
        print(f"rnnad {name}: error: {exc}", file=sys.stderr)
        sys.exit(1)
