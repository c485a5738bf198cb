"""Datasets: a common Series type, fetching with checksums and the mirror, a module per dataset."""

from rnnad.datasets.series import DataError, Series

__all__ = ["DataError", "Series"]
