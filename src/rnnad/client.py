"""A client for the detector service: batch calls, and point-by-point streaming.

The service (``rnnad.service``) is stateless: ``POST /detect`` scores the values it is sent,
and the score of point t depends only on points t-window+1..t. :class:`StreamDetector` turns
that into a streaming detector: it keeps the last ``window`` points of a series and, for each
new point, sends exactly that tail and keeps the score of the newest point. Streaming thus
gives the same scores as scoring the whole series in one batch, with no look-ahead.

Library use::

    from rnnad.client import StreamDetector

    with StreamDetector("http://localhost:3000", "realKnownCause/nyc_taxi") as det:
        for value, ts in incoming:
            point = det.update(value, ts)
            if point.flag:
                alert(point)

Command line (one CSV line per point on stdout, as the points stream in)::

    python -m rnnad.client http://localhost:3000 realKnownCause/nyc_taxi nyc_taxi.csv

Only the standard library is used; one HTTP/1.1 keep-alive connection is kept per client and
reopened once if the server dropped it. Clients are not thread-safe: use one per thread.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import difflib
import http.client
import json
import math
import numbers
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

__all__ = [
    "Client",
    "ClientError",
    "StreamDetector",
    "StreamScore",
    "detect",
    "main",
    "stream_csv",
]

DEFAULT_TIMEOUT = 10.0
# Errors that mean the server closed a (kept-alive) connection under us: reconnect once.
_DROPPED = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
            http.client.RemoteDisconnected)
_KNOWN_SHOWN = 5  # known series listed in an "unknown series" error


class ClientError(Exception):
    """A request the client refused to send, a failed call, or an answer it cannot use.

    ``status`` is the HTTP status when the server answered with an error (else ``None``);
    ``detail`` is the server's decoded error body, when there was one.
    """

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class StreamScore:
    """The outcome for one point of a stream.

    ``index`` is the point's 0-based position in the stream; ``score`` is ``None`` (and
    ``flag`` False) while fewer than ``window`` points have been seen; ``flag`` is the
    server's ``score > threshold``; ``timestamp`` is the one given with the point, as an ISO
    string, or ``None``.
    """

    index: int
    value: float | tuple[float, ...]  # a tuple (one per channel) for a multivariate series
    score: float | None
    flag: bool
    threshold: float
    timestamp: str | None = None
    # multivariate, flagged: the channels that contributed most, with their share of the score
    channels: tuple[tuple[str, float], ...] = ()


def _json_default(obj: Any) -> Any:
    """JSON for numpy scalars and arrays (``.tolist()``/``.item()``) and datetimes."""
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    for method in ("tolist", "item"):
        if callable(getattr(obj, method, None)):
            return getattr(obj, method)()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _error_message(data: bytes) -> tuple[str, Any]:
    """The message in an error body, and the decoded body (``None`` if not JSON).

    Understands the service's ``{"error": ..., "detail": [...]}`` and pydantic-style lists of
    ``{"loc": [...], "msg": ...}`` (bare, or under ``detail``) as BentoML sends them.
    """
    text = data.decode("utf-8", errors="replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        return (text[:300] or "(empty body)"), None

    def from_items(items: list[Any]) -> str:
        parts = []
        for item in items:
            if isinstance(item, Mapping) and "msg" in item:
                loc = item.get("loc")
                where = ".".join(map(str, loc)) if isinstance(loc, list | tuple) else ""
                parts.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
            else:
                parts.append(str(item))
        return "; ".join(parts)

    if isinstance(body, Mapping):
        for key in ("error", "message", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value, body
            if isinstance(value, list) and value:
                return from_items(value), body
    if isinstance(body, list) and body:
        return from_items(body), body
    return text[:300], body


class Client:
    """One keep-alive HTTP connection to the service, reopened once if the server dropped it.

    ``url`` is the service's base URL (``http://host:port``, optionally with a path prefix;
    ``http://`` is assumed when no scheme is given). Use as a context manager, or call
    :meth:`close`; a closed client reconnects on its next call.
    """

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        full = url if "://" in url else f"http://{url}"
        parts = urlsplit(full)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"bad service URL {url!r}: expected http[s]://host[:port]")
        try:
            port = parts.port
        except ValueError as exc:
            raise ClientError(f"bad service URL {url!r}: {exc}") from exc
        self.url = full.rstrip("/")
        self.timeout = timeout
        self._prefix = parts.path.rstrip("/")
        connection_class = (http.client.HTTPSConnection if parts.scheme == "https"
                            else http.client.HTTPConnection)
        self._conn = connection_class(parts.hostname, port, timeout=timeout)

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _request(self, method: str, path: str, payload: Any = None) -> Any:
        """Send one request; the decoded JSON answer of a 2xx, else :class:`ClientError`."""
        body: bytes | None = None
        headers = {"Accept": "application/json"}
        if payload is not None:
            try:
                body = json.dumps(payload, allow_nan=False, default=_json_default).encode()
            except ValueError as exc:  # NaN or infinity
                raise ClientError(f"{method} {path}: request holds a non-finite number "
                                  f"({exc}); the service accepts only finite values") from exc
            except TypeError as exc:
                raise ClientError(f"{method} {path}: request is not JSON: {exc}") from exc
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self._conn.request(method, self._prefix + path, body=body, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
            except _DROPPED as exc:
                self._conn.close()
                if attempt == 1:
                    continue  # a kept-alive connection the server had closed: reconnect once
                raise ClientError(f"{method} {self.url}{path}: connection dropped: "
                                  f"{exc or type(exc).__name__}") from exc
            except TimeoutError as exc:
                self._conn.close()
                raise ClientError(f"{method} {self.url}{path}: no answer within "
                                  f"{self.timeout:g} s") from exc
            except (OSError, http.client.HTTPException) as exc:
                self._conn.close()
                raise ClientError(f"{method} {self.url}{path}: cannot reach the service: "
                                  f"{exc or type(exc).__name__}") from exc
            break
        if not 200 <= response.status < 300:
            message, detail = _error_message(data)
            raise ClientError(f"{method} {path} failed with HTTP {response.status}: {message}",
                              status=response.status, detail=detail)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ClientError(f"{method} {path}: answer is not JSON: {data[:200]!r}",
                              status=response.status) from exc

    def models(self) -> dict[str, Any]:
        """``GET /models``: the model tag, git revision and the series the service knows."""
        answer = self._request("GET", "/models")
        if not isinstance(answer, dict) or not isinstance(answer.get("series"), list):
            raise ClientError(f"GET /models: unexpected answer (no 'series' list) from "
                              f"{self.url}")
        return answer

    def series_info(self, series: str) -> dict[str, Any]:
        """The ``/models`` entry of ``series``; :class:`ClientError` naming known ones if
        the service does not know it."""
        entries = [s for s in self.models()["series"] if isinstance(s, dict)]
        for entry in entries:
            if entry.get("series") == series:
                return entry
        known = sorted(str(s.get("series")) for s in entries)
        if not known:
            raise ClientError(f"unknown series {series!r}: the service at {self.url} knows "
                              "no series")
        close = difflib.get_close_matches(series, known, n=3, cutoff=0.6)
        shown = close or known[:_KNOWN_SHOWN]
        more = "" if close or len(known) <= len(shown) else f", ... ({len(known)} in all)"
        label = "did you mean" if close else "known"
        raise ClientError(f"unknown series {series!r} at {self.url}; {label}: "
                          f"{', '.join(shown)}{more}")

    def detect(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """``POST /detect`` for ``items`` (each ``{"series", "values"[, "timestamps"]}``);
        the results, in request order."""
        items = list(items)
        answer = self._request("POST", "/detect", {"items": [dict(i) for i in items]})
        results = answer.get("results") if isinstance(answer, dict) else None
        if (not isinstance(results, list) or len(results) != len(items)
                or not all(isinstance(r, dict) for r in results)):
            raise ClientError(f"POST /detect: unexpected answer: expected 'results' with "
                              f"{len(items)} object(s)")
        return results


def detect(url: str, items: Sequence[Mapping[str, Any]], timeout: float = DEFAULT_TIMEOUT
           ) -> list[dict[str, Any]]:
    """One batch call to ``POST /detect`` at ``url``; the results, in request order.

    Each item is ``{"series": id, "values": [...], "timestamps": [...] (optional)}``; numpy
    arrays and datetimes are accepted. Raises :class:`ClientError` with the server's message
    and ``status`` when it answers 4xx/5xx, or when it cannot be reached.
    """
    with Client(url, timeout=timeout) as client:
        return client.detect(items)


def _timestamp_text(timestamp: Any, index: int) -> str:
    """A point's timestamp as the ISO string sent to the service."""
    if isinstance(timestamp, datetime | date):
        return timestamp.isoformat()
    if isinstance(timestamp, str):
        if not timestamp.strip():
            raise ClientError(f"point {index}: empty timestamp")
        return timestamp
    raise ClientError(f"point {index}: timestamp {timestamp!r} is not a string or datetime")


def _number(value: Any, where: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ClientError(f"{where} {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ClientError(f"{where} {number} is not finite; the service accepts only finite "
                          "values")
    return number


def _point_value(value: Any, index: int, channels: int,
                 names: Sequence[str] | None) -> float | tuple[float, ...]:
    """One point of a stream: a number (univariate) or one number per channel."""
    if channels == 1:
        return _number(value, f"point {index}: value")
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ClientError(f"point {index}: the series has {channels} channels "
                          f"({', '.join(names or [])}): give one value per channel")
    row = list(value)
    if len(row) != channels:
        raise ClientError(f"point {index}: {len(row)} values for {channels} channels "
                          f"({', '.join(names or [])})")
    return tuple(_number(v, f"point {index}: channel {c} value") for c, v in enumerate(row))


def _contributions(result: Mapping[str, Any], index: int) -> tuple[tuple[str, float], ...]:
    for entry in result.get("contributions") or ():
        if isinstance(entry, Mapping) and entry.get("index") == index:
            return tuple((str(c.get("channel")), float(c.get("share", 0.0)))
                         for c in entry.get("channels", ()) if isinstance(c, Mapping))
    return ()


class StreamDetector:
    """Point-by-point scores of one series, from the stateless service.

    The series' window and threshold are read from ``GET /models`` on first use. Each
    :meth:`update` keeps the last ``window`` points and, once ``window`` points have arrived,
    sends exactly those to ``POST /detect`` and returns the newest point's score, so that
    the scores equal those of one batch call over the whole stream. A multivariate series takes
    one value per channel for each point (in the order ``/models`` lists its ``channel_names``)
    and a flagged point's :class:`StreamScore` names the channels that contributed most.
    Timestamps are optional,
    but if given they must be given for every point. The connection is kept open across
    calls: use as a context manager, or call :meth:`close`.
    """

    def __init__(self, url: str, series: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.series = series
        self._client = Client(url, timeout=timeout)
        self._info: dict[str, Any] | None = None
        self._values: deque[float | tuple[float, ...]] = deque()
        self._timestamps: deque[str] = deque()
        self._timestamped: bool | None = None  # decided by the first point
        self._count = 0

    @property
    def url(self) -> str:
        """The service's base URL."""
        return self._client.url

    @property
    def info(self) -> dict[str, Any]:
        """The series' ``/models`` entry (fetched on first use)."""
        if self._info is None:
            info = self._client.series_info(self.series)
            window, threshold = info.get("window"), info.get("threshold")
            if not isinstance(window, int) or isinstance(window, bool) or window < 1:
                raise ClientError(f"series {self.series!r}: bad window {window!r} in /models")
            if not isinstance(threshold, int | float) or isinstance(threshold, bool):
                raise ClientError(f"series {self.series!r}: bad threshold {threshold!r} in "
                                  "/models")
            channels = info.get("channels", 1)
            if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
                raise ClientError(f"series {self.series!r}: bad channels {channels!r} in "
                                  "/models")
            self._info = info
            self._values = deque(self._values, maxlen=window)
            self._timestamps = deque(self._timestamps, maxlen=window)
        return self._info

    @property
    def window(self) -> int:
        """Points per score: the series' window."""
        return int(self.info["window"])

    @property
    def threshold(self) -> float:
        """The series' threshold, as ``/models`` gave it (a score above it is flagged)."""
        return float(self.info["threshold"])

    @property
    def count(self) -> int:
        """Points accepted so far (the index the next point will get)."""
        return self._count

    def update(self, value: float | Sequence[float],
               timestamp: str | datetime | None = None) -> StreamScore:
        """Add the next point; its :class:`StreamScore`.

        The score is ``None`` (flag False) while fewer than ``window`` points have arrived,
        and the service is not called. A point that is refused (non-finite value, timestamps
        given for some points only) or whose call fails leaves the stream as it was, so it
        can be sent again.
        """
        index = self._count
        channels = int(self.info.get("channels", 1))
        number = _point_value(value, index, channels, self.info.get("channel_names"))
        has_time = timestamp is not None
        if self._timestamped is not None and has_time != self._timestamped:
            raise ClientError(
                f"point {index}: " + ("timestamp given, but earlier points had none"
                                      if has_time else "no timestamp, but earlier points had "
                                      "one; give timestamps for every point or for none"))
        stamp = _timestamp_text(timestamp, index) if has_time else None
        info = self.info
        window = int(info["window"])
        threshold = float(info["threshold"])
        values = [*self._values, number][-window:]
        score: float | None = None
        flag = False
        top: tuple[tuple[str, float], ...] = ()
        if len(values) == window:
            item: dict[str, Any] = {"series": self.series,
                                    "values": [list(v) if isinstance(v, tuple) else v
                                               for v in values]}
            if stamp is not None:
                item["timestamps"] = [*self._timestamps, stamp][-window:]
            result = self._client.detect([item])[0]
            score, flag, threshold = self._newest(result, window)
            top = _contributions(result, window - 1)
        self._values.append(number)
        if stamp is not None:
            self._timestamps.append(stamp)
        self._timestamped = has_time
        self._count += 1
        return StreamScore(index=index, value=number, score=score, flag=flag,
                           threshold=threshold, timestamp=stamp, channels=top)

    def _newest(self, result: dict[str, Any], window: int) -> tuple[float, bool, float]:
        """Score, flag and threshold of the last point of a one-window result."""
        if result.get("window", window) != window:
            raise ClientError(f"series {self.series!r}: the service now uses window "
                              f"{result.get('window')!r}, not {window} (model changed?)")
        scores, flags = result.get("scores"), result.get("flags")
        if (not isinstance(scores, list) or not isinstance(flags, list)
                or len(scores) != window or len(flags) != window):
            raise ClientError(f"POST /detect: expected {window} scores and flags for series "
                              f"{self.series!r}")
        score = scores[-1]
        if not isinstance(score, int | float) or isinstance(score, bool):
            raise ClientError(f"POST /detect: no score for the newest point of series "
                              f"{self.series!r} (got {score!r})")
        threshold = result.get("threshold", self.info["threshold"])
        return float(score), bool(flags[-1]), float(threshold)

    def feed(self, values: Iterable[float],
             timestamps: Iterable[str | datetime] | None = None) -> Iterator[StreamScore]:
        """:meth:`update` for each value (and timestamp), lazily, in order."""
        if (timestamps is not None and isinstance(values, Sized)
                and isinstance(timestamps, Sized) and len(values) != len(timestamps)):
            raise ClientError(f"{len(values)} values but {len(timestamps)} timestamps")
        return self._feed(values, timestamps)

    def _feed(self, values: Iterable[float],
              timestamps: Iterable[str | datetime] | None) -> Iterator[StreamScore]:
        if timestamps is None:
            for value in values:
                yield self.update(value)
            return
        try:
            pairs = zip(values, timestamps, strict=True)
            for value, timestamp in pairs:
                yield self.update(value, timestamp)
        except ValueError as exc:  # zip(strict=True): the lengths differ
            if "zip()" not in str(exc):
                raise
            raise ClientError(f"values and timestamps differ in length: {exc}") from exc

    def close(self) -> None:
        """Close the connection to the service."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()



def stream_csv(url: str, series: str, path: str | Path, value_column: str = "value",
               timestamp_column: str | None = "timestamp", *,
               timeout: float = DEFAULT_TIMEOUT) -> Iterator[StreamScore]:
    """Stream a CSV file (NAB's layout: ``timestamp,value``) row by row through a
    :class:`StreamDetector`; one :class:`StreamScore` per row, as each is scored.

    ``timestamp_column=None`` sends no timestamps. Missing columns, empty cells and values
    that are not finite numbers raise :class:`ClientError` naming the file, row and column
    (rows are counted from 1 after the header; the file line is given too).
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle, StreamDetector(url, series, timeout=timeout) as detector:
        reader = csv.DictReader(handle)
        try:
            columns = reader.fieldnames
            if not columns:
                raise ClientError(f"{path}: empty file (no header row)")
            wanted = [value_column] + ([timestamp_column] if timestamp_column else [])
            for column in wanted:
                if column not in columns:
                    raise ClientError(f"{path}: no column {column!r} (columns: "
                                      f"{', '.join(columns)})")
            for row_number, row in enumerate(reader, start=1):
                where = f"{path}: row {row_number} (line {reader.line_num})"
                raw = row.get(value_column)
                if raw is None or not raw.strip():
                    raise ClientError(f"{where}, column {value_column!r}: missing value")
                try:
                    value = float(raw)
                except ValueError:
                    raise ClientError(f"{where}, column {value_column!r}: {raw!r} is not a "
                                      "number") from None
                if not math.isfinite(value):
                    raise ClientError(f"{where}, column {value_column!r}: {raw!r} is not "
                                      "finite")
                stamp = None
                if timestamp_column:
                    stamp = (row.get(timestamp_column) or "").strip()
                    if not stamp:
                        raise ClientError(f"{where}, column {timestamp_column!r}: missing "
                                          "timestamp")
                yield detector.update(value, stamp)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ClientError(f"{path}: line {reader.line_num}: unreadable CSV: {exc}") from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rnnad.client",
        description="Stream a CSV series point by point through the detector service; print "
                    "timestamp,value,score,flag for each point as it is scored.")
    parser.add_argument("url", help="service base URL, e.g. http://localhost:3000")
    parser.add_argument("series", help="series id, e.g. realKnownCause/nyc_taxi")
    parser.add_argument("csv", type=Path, help="CSV file with a header row")
    parser.add_argument("--value-column", default="value", help="default: %(default)s")
    parser.add_argument("--timestamp-column", default="timestamp",
                        help="default: %(default)s")
    parser.add_argument("--no-timestamps", action="store_true",
                        help="the file has no timestamp column; send none")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds per request (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; 0 on success, 2 (one line on stderr) on a :class:`ClientError`."""
    args = _parser().parse_args(argv)
    out = sys.stdout
    writer = csv.writer(out, lineterminator="\n")
    header = ["timestamp", "value", "score", "flag"]
    try:
        points = stream_csv(args.url, args.series, args.csv, args.value_column,
                            None if args.no_timestamps else args.timestamp_column,
                            timeout=args.timeout)
        for point in points:
            if header:  # after the file was found good, before the first point
                writer.writerow(header)
                header = []
            writer.writerow([point.timestamp or "", repr(point.value),
                             "" if point.score is None else repr(point.score),
                             "true" if point.flag else "false"])
            out.flush()
        if header:
            writer.writerow(header)
    except ClientError as exc:
        message = " ".join(str(exc).split())
        print(f"rnnad.client: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
