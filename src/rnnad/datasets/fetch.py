"""Download dataset files with checksum verification, or copy them from a local mirror.

Sources, in order: the folder named by ``RNNAD_DATA_MIRROR`` when it is set (laid out like
``shared/datasets/``: ``<mirror>/<dataset>/<path>``), else the upstream URL. Every file is
written to a temporary name, its sha256 checked against the manifest, then renamed into place:
a failed or corrupted transfer leaves no file behind.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from rnnad.io import atomic_path, sha256_file

MIRROR_ENV = "RNNAD_DATA_MIRROR"


class FetchError(RuntimeError):
    """A dataset file could not be obtained or failed verification."""


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    size: int
    sha256: str


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    """Parse a ``path<TAB>size_bytes<TAB>sha256`` manifest (first line is a header)."""
    path = Path(path)
    entries = []
    lines = path.read_text().splitlines()
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if (
            len(parts) != 3
            or re.fullmatch(r"[0-9]+", parts[1]) is None
            or re.fullmatch(r"[0-9a-fA-F]{64}", parts[2]) is None
        ):
            raise FetchError(f"{path}:{lineno}: expected 'path<TAB>size<TAB>sha256', got {line!r}")
        entries.append(ManifestEntry(parts[0], int(parts[1]), parts[2].lower()))
    if not entries:
        raise FetchError(f"{path}: manifest lists no files")
    return entries


def mirror_root() -> Path | None:
    value = os.environ.get(MIRROR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def _verify(tmp: Path, entry: ManifestEntry, source: str) -> None:
    digest = sha256_file(tmp)
    if digest != entry.sha256:
        raise FetchError(
            f"checksum mismatch for {entry.path} from {source}: expected sha256 {entry.sha256}, "
            f"got {digest}. The upstream file changed or the transfer was corrupted; "
            "nothing was written."
        )


def _download(url: str, dest: Path, timeout_s: float) -> None:
    """Stream ``url`` into ``dest``; a transfer cut short of its Content-Length raises."""
    with requests.get(url, stream=True, timeout=timeout_s) as resp:
        resp.raise_for_status()
        expected = resp.headers.get("Content-Length")
        written = 0
        with open(dest, "wb") as fh:
            for block in resp.iter_content(chunk_size=1 << 16):
                fh.write(block)
                written += len(block)
        if expected is not None and expected.isdigit() and written != int(expected) \
                and not resp.headers.get("Content-Encoding"):
            raise requests.exceptions.ChunkedEncodingError(
                f"transfer interrupted: {written} of {expected} bytes")


def _download_verified(url: str, tmp: Path, entry: ManifestEntry, retries: int,
                       timeout_s: float) -> None:
    """Download ``url`` into ``tmp`` until its sha256 matches ``entry``, at most ``retries``
    attempts. A failed or cut-off transfer and a checksum mismatch are both retried (a flaky
    connection can corrupt a transfer); the same wrong digest twice means the upstream file
    changed, which stops at once."""
    last_error: Exception | None = None
    digests: list[str] = []
    for attempt in range(max(1, retries)):
        if attempt:
            time.sleep(min(2 ** (attempt - 1), 5))
        try:
            _download(url, tmp, timeout_s)
        except requests.RequestException as exc:
            last_error = exc
            continue
        digest = sha256_file(tmp)
        if digest == entry.sha256:
            return
        if digest in digests:
            break  # the same bytes again: not a transfer error
        digests.append(digest)
        last_error = None
    if digests and last_error is None:
        raise FetchError(
            f"checksum mismatch for {entry.path} from {url}: expected sha256 {entry.sha256}, "
            f"got {digests[-1]} ({len(digests)} distinct digest(s) in {attempt + 1} attempts). "
            "The upstream file changed (or every transfer was corrupted); nothing was written. "
            "Check the upstream source and update the dataset's manifest deliberately."
        )
    raise FetchError(
        f"could not download {url} after {attempt + 1} attempts ({last_error}). "
        f"Without network access, set {MIRROR_ENV} to a local copy laid out like "
        f"shared/datasets/, e.g. `export {MIRROR_ENV}=../shared/datasets`."
    ) from last_error


def fetch_files(
    entries: list[ManifestEntry],
    dest: Path,
    dataset: str,
    url_for: Callable[[str], str],
    *,
    retries: int = 3,
    timeout_s: float = 60.0,
    mirror: Path | None = None,
) -> list[Path]:
    """Make ``dest/<entry.path>`` exist with the manifest's checksum for every entry.

    Files already present with the right checksum are kept. Returns the paths in manifest order.
    """
    mirror = mirror if mirror is not None else mirror_root()
    if mirror is not None and not (mirror / dataset).is_dir():
        raise FetchError(
            f"{MIRROR_ENV}={mirror} has no '{dataset}/' folder; point it at a folder laid out "
            f"like shared/datasets/ (e.g. {MIRROR_ENV}=../shared/datasets)"
        )
    out: list[Path] = []
    for entry in tqdm(entries, desc=f"fetch {dataset}", unit="file"):
        target = dest / entry.path
        out.append(target)
        if target.is_file() and sha256_file(target) == entry.sha256:
            continue
        with atomic_path(target) as tmp:
            if mirror is not None:
                src = mirror / dataset / entry.path
                if not src.is_file():
                    raise FetchError(f"{src}: missing from the mirror ({MIRROR_ENV}={mirror})")
                shutil.copyfile(src, tmp)
                _verify(tmp, entry, str(src))
            else:
                _download_verified(url_for(entry.path), tmp, entry, retries, timeout_s)
    return out
