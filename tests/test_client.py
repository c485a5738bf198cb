"""The service client against a fake service: streaming equals batch scoring, no look-ahead.

The fake service implements the ``/models`` and ``/detect`` contract with a known causal score
(the mean square of each window's values), counts requests and connections, and can be told
to fail or to drop its connection, so no BentoML or model is needed.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnad.client import (
    Client,
    ClientError,
    StreamDetector,
    StreamScore,
    detect,
    main,
    stream_csv,
)

SERIES = {
    "test/small": {"window": 4, "threshold": 2.0},
    "test/wide": {"window": 7, "threshold": 0.5},
    "test/multi": {"window": 3, "threshold": 1.0, "channels": 2},
}


def window_score(window: list[float]) -> float:
    """The fake model's score of a window's last point: mean squared deviation from 0."""
    return float(np.mean(np.square(np.asarray(window, dtype=np.float64))))


def offline_scores(values: list[float], window: int) -> list[float | None]:
    """Scores of a whole series at once, as the contract defines them."""
    return [None if t < window - 1 else window_score(values[t - window + 1:t + 1])
            for t in range(len(values))]


class FakeService(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, JSON body)
        self.clients: set[tuple[str, int]] = set()
        self.fail_next: tuple[int, Any] | None = None  # (status, body) of the next /detect
        self.drop_after_next = False  # close the connection after the next answer, silently
        self.delay = 0.0  # seconds before answering /detect

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left: nothing to report

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def detects(self) -> list[Any]:
        with self.lock:
            return [body for method, path, body in self.requests if path == "/detect"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body go out in two writes
    timeout = 10
    server: FakeService

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.server.drop_after_next:
            self.server.drop_after_next = False
            self.close_connection = True  # no "Connection: close": the client finds out later

    def _record(self, body: Any) -> None:
        with self.server.lock:
            self.server.requests.append((self.command, self.path, body))
            self.server.clients.add(self.client_address)

    def do_GET(self) -> None:
        self._record(None)
        if self.path != "/models":
            self._send(404, {"error": "not found"})
            return
        self._send(200, {"model_tag": "rnnad_nab:test", "git_revision": "abc123", "series": [
            {"series": sid, "window": s["window"], "channels": s.get("channels", 1),
             "threshold": s["threshold"], "reduce": "mean", "data_sha256": "0" * 64,
             "onnx_sha256": "1" * 64, "model": {}, "params": {}}
            for sid, s in SERIES.items()]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._record(body)
        time.sleep(self.server.delay)
        if self.path != "/detect":
            self._send(404, {"error": "not found"})
            return
        if self.server.fail_next is not None:
            status, error = self.server.fail_next
            self.server.fail_next = None
            self._send(status, error)
            return
        results = []
        for i, item in enumerate(body["items"]):
            spec = SERIES.get(item["series"])
            if spec is None:
                msg = f"unknown series {item['series']!r}"
                self._send(404, {"error": f"items.{i}.series: {msg}",
                                 "detail": [{"loc": ["items", i, "series"], "msg": msg}]})
                return
            values, window = item["values"], spec["window"]
            if len(values) < window:
                msg = f"{len(values)} values given; needs at least {window}"
                self._send(400, {"error": f"items.{i}.values: {msg}",
                                 "detail": [{"loc": ["items", i, "values"], "msg": msg}]})
                return
            scores = offline_scores(values, window)
            flags = [s is not None and s > spec["threshold"] for s in scores]
            results.append({"series": item["series"], "window": window,
                            "threshold": spec["threshold"], "reduce": "mean",
                            "scores": scores, "flags": flags, "anomalies": sum(flags),
                            "timestamps": item.get("timestamps")})
        self._send(200, {"results": results})


@pytest.fixture
def service() -> Iterator[FakeService]:
    server = FakeService()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def series_values(n: int = 60, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=n)
    values[n // 3] = 5.0  # a spike, flagged over the windows that hold it
    return [float(v) for v in values]


def timestamps(n: int) -> list[str]:
    start = datetime(2014, 7, 1)
    return [(start + timedelta(minutes=30 * i)).isoformat() for i in range(n)]


def test_stream_equals_offline_scores_with_no_lookahead(service: FakeService) -> None:
    values = series_values()
    window, threshold = SERIES["test/small"]["window"], SERIES["test/small"]["threshold"]
    expected = offline_scores(values, window)
    with StreamDetector(service.url, "test/small") as det:
        points = []
        for t, value in enumerate(values):
            point = det.update(value)
            points.append(point)
            sent = service.detects()
            if t < window - 1:
                assert point.score is None and point.flag is False
                assert sent == []  # nothing sent before a full window
            else:
                # one call per point from here on, carrying exactly the last `window` points
                assert len(sent) == t - window + 2
                assert sent[-1] == {"items": [{"series": "test/small",
                                               "values": values[t - window + 1:t + 1]}]}
            assert point == StreamScore(index=t, value=value, score=point.score,
                                        flag=point.flag, threshold=threshold, timestamp=None)
    assert [p.score for p in points] == pytest.approx(expected)
    assert [p.flag for p in points] == [s is not None and s > threshold for s in expected]
    assert any(p.flag for p in points) and not all(p.flag for p in points[window - 1:])
    assert det.window == window and det.count == len(values)

    # and one batch call over the whole series gives the same scores
    (result,) = detect(service.url, [{"series": "test/small", "values": values}])
    assert result["scores"] == pytest.approx([p.score for p in points])


def test_connection_is_kept_alive_and_reopened_once_when_dropped(service: FakeService) -> None:
    values = series_values(30)
    with StreamDetector(service.url, "test/wide") as det:
        scores = [p.score for p in det.feed(values[:15])]
        assert len(service.clients) == 1  # /models and 9 /detect calls on one connection
        service.drop_after_next = True  # the server closes after its next answer
        scores += [p.score for p in det.feed(values[15:])]
    assert scores == pytest.approx(offline_scores(values, 7))
    assert len(service.clients) == 2  # reconnected once, then kept again
    assert len(service.detects()) == len(values) - 6


def test_timestamps_are_sent_and_passed_through(service: FakeService) -> None:
    values, stamps = series_values(10), timestamps(10)
    with StreamDetector(service.url, "test/small") as det:
        points = list(det.feed(values, stamps))
    assert [p.timestamp for p in points] == stamps
    assert [p.index for p in points] == list(range(10))
    for t, body in enumerate(service.detects(), start=3):
        assert body["items"][0]["timestamps"] == stamps[t - 3:t + 1]
        assert body["items"][0]["values"] == values[t - 3:t + 1]

    # datetimes are sent as ISO strings
    with StreamDetector(service.url, "test/small") as det:
        point = list(det.feed(values[:4], [datetime.fromisoformat(s) for s in stamps[:4]]))[-1]
    assert point.timestamp == stamps[3]
    assert service.detects()[-1]["items"][0]["timestamps"] == stamps[:4]


def test_timestamps_must_be_given_for_every_point_or_none(service: FakeService) -> None:
    with StreamDetector(service.url, "test/small") as det:
        det.update(1.0, "2014-07-01T00:00:00")
        with pytest.raises(ClientError, match="point 1: no timestamp"):
            det.update(2.0)
        assert det.count == 1
    with StreamDetector(service.url, "test/small") as det:
        det.update(1.0)
        with pytest.raises(ClientError, match="point 1: timestamp given"):
            det.update(2.0, "2014-07-01T00:30:00")
    with StreamDetector(service.url, "test/small") as det, \
            pytest.raises(ClientError, match="differ in length"):
        list(det.feed(iter([1.0, 2.0]), iter(["2014-07-01T00:30:00"])))
    with StreamDetector(service.url, "test/small") as det, \
            pytest.raises(ClientError, match="2 values but 1 timestamps"):
        det.feed([1.0, 2.0], ["2014-07-01T00:00:00"])


def test_non_finite_value_is_rejected_locally(service: FakeService) -> None:
    with StreamDetector(service.url, "test/small") as det:
        for value in (1.0, 2.0, 3.0):
            det.update(value)
        for bad in (math.nan, math.inf, -math.inf):
            with pytest.raises(ClientError, match=r"point 3: value .* not finite"):
                det.update(bad)
        with pytest.raises(ClientError, match="point 3: value '4' is not a number"):
            det.update("4")  # type: ignore[arg-type]
        assert service.detects() == []
        point = det.update(4.0)  # the stream is unchanged: this is point 3
    assert point.index == 3
    assert point.score == pytest.approx(window_score([1.0, 2.0, 3.0, 4.0]))


def test_unknown_series(service: FakeService) -> None:
    with StreamDetector(service.url, "test/smal") as det, \
            pytest.raises(ClientError, match=r"unknown series 'test/smal'.*test/small"):
        det.update(1.0)
    with StreamDetector(service.url, "nothing/like/it") as det, \
            pytest.raises(ClientError, match=r"known: test/multi, test/small, test/wide"):
        det.update(1.0)
    with StreamDetector(service.url, "test/multi") as det:
        with pytest.raises(ClientError, match="point 0: the series has 2 channels"):
            det.update(1.0)
        with pytest.raises(ClientError, match="point 0: 3 values for 2 channels"):
            det.update([1.0, 2.0, 3.0])
        with pytest.raises(ClientError, match="point 0: channel 1 value nan is not finite"):
            det.update([1.0, float("nan")])
        assert service.detects() == []


def test_a_multivariate_stream_equals_the_offline_scores(service: FakeService) -> None:
    rng = np.random.default_rng(3)
    rows = [[float(a), float(b)] for a, b in rng.normal(size=(20, 2))]
    window = SERIES["test/multi"]["window"]
    expected = offline_scores(rows, window)  # type: ignore[arg-type]
    with StreamDetector(service.url, "test/multi") as det:
        points = list(det.feed(rows))
    assert [p.value for p in points] == [tuple(r) for r in rows]
    assert [p.score for p in points][: window - 1] == [None] * (window - 1)
    assert [p.score for p in points][window - 1 :] == pytest.approx(expected[window - 1 :])
    sent = service.detects()[0]["items"][0]["values"]
    assert sent == rows[:window]  # rows of channel values, exactly one window


def test_server_errors_become_client_errors(service: FakeService) -> None:
    with pytest.raises(ClientError, match=r"HTTP 404: items\.0\.series: unknown series") as err:
        detect(service.url, [{"series": "nope", "values": [1.0]}])
    assert err.value.status == 404
    assert err.value.detail["detail"][0]["loc"] == ["items", 0, "series"]
    with pytest.raises(ClientError, match=r"HTTP 400: items\.0\.values: 2 values") as err:
        detect(service.url, [{"series": "test/small", "values": np.array([1.0, 2.0])}])
    assert err.value.status == 400

    # BentoML's own pydantic-style bodies
    service.fail_next = (400, [{"loc": ["items", 0, "values", 2], "msg": "not a float",
                                "type": "float_parsing"}])
    with pytest.raises(ClientError, match=r"HTTP 400: items\.0\.values\.2: not a float"):
        detect(service.url, [{"series": "test/small", "values": [1.0] * 4}])
    service.fail_next = (400, {"detail": [{"loc": ["body", "items"], "msg": "Field required"}]})
    with pytest.raises(ClientError, match=r"body\.items: Field required"):
        detect(service.url, [{"series": "test/small", "values": [1.0] * 4}])

    # a failed call leaves the stream as it was, so the point can be sent again
    with StreamDetector(service.url, "test/small") as det:
        list(det.feed([1.0, 2.0, 3.0]))
        service.fail_next = (500, {"error": "internal error"})
        with pytest.raises(ClientError, match="HTTP 500: internal error") as err:
            det.update(4.0)
        assert err.value.status == 500 and det.count == 3
        point = det.update(4.0)
    assert point.index == 3 and point.score == pytest.approx(7.5)


def test_detect_batch_in_request_order(service: FakeService) -> None:
    a, b = series_values(12, seed=1), series_values(9, seed=2)
    results = detect(service.url, [{"series": "test/wide", "values": a},
                                   {"series": "test/small", "values": b,
                                    "timestamps": timestamps(9)}])
    assert [r["series"] for r in results] == ["test/wide", "test/small"]
    assert results[0]["scores"] == pytest.approx(offline_scores(a, 7))
    assert results[1]["timestamps"] == timestamps(9)


def test_unreachable_service_and_bad_url() -> None:
    with pytest.raises(ClientError, match="bad service"):
        Client("ftp://example.org")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    server.server_close()  # nothing listens there now
    with pytest.raises(ClientError, match="cannot reach the service"):
        detect(f"127.0.0.1:{port}", [{"series": "test/small", "values": [1.0] * 4}], timeout=2)


def test_timeout_becomes_client_error(service: FakeService) -> None:
    service.delay = 0.5
    with pytest.raises(ClientError, match=r"no answer within 0\.1 s"):
        detect(service.url, [{"series": "test/small", "values": [1.0] * 4}], timeout=0.1)


def write_csv(path: Path, rows: list[tuple[str, str]], header: str = "timestamp,value") -> Path:
    path.write_text(header + "\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return path


def test_stream_csv(service: FakeService, tmp_path: Path) -> None:
    values, stamps = series_values(12), timestamps(12)
    good = write_csv(tmp_path / "good.csv", [(t, repr(v)) for t, v in zip(stamps, values,
                                                                           strict=True)])
    points = list(stream_csv(service.url, "test/small", good))
    assert [p.score for p in points] == pytest.approx(offline_scores(values, 4))
    assert [p.timestamp for p in points] == stamps

    # without timestamps, and with other column names
    other = tmp_path / "other.csv"
    other.write_text("x\n" + "".join(f"{v!r}\n" for v in values))
    points = list(stream_csv(service.url, "test/small", other, value_column="x",
                             timestamp_column=None))
    assert [p.score for p in points] == pytest.approx(offline_scores(values, 4))
    assert all(p.timestamp is None for p in points)

    with pytest.raises(ClientError, match=r"missing\.csv: no column 'value' \(columns: "
                                          r"timestamp, val\)"):
        list(stream_csv(service.url, "test/small",
                        write_csv(tmp_path / "missing.csv", [("t", "1")], "timestamp,val")))
    rows = [(t, "1.5") for t in stamps[:5]]
    rows[2] = (stamps[2], "abc")
    bad = write_csv(tmp_path / "bad.csv", rows)
    seen = []
    with pytest.raises(ClientError, match=r"bad\.csv: row 3 \(line 4\), column 'value': "
                                          r"'abc' is not a number"):
        seen.extend(stream_csv(service.url, "test/small", bad))
    assert len(seen) == 2  # rows before the bad one were streamed
    rows[2] = (stamps[2], "nan")
    with pytest.raises(ClientError, match=r"row 3 \(line 4\), column 'value': 'nan' is not "
                                          "finite"):
        list(stream_csv(service.url, "test/small", write_csv(tmp_path / "nan.csv", rows)))
    rows[2] = ("", "1.0")
    with pytest.raises(ClientError, match=r"row 3 \(line 4\), column 'timestamp': missing"):
        list(stream_csv(service.url, "test/small", write_csv(tmp_path / "nots.csv", rows)))
    with pytest.raises(ClientError, match=r"cannot read .*absent\.csv"):
        list(stream_csv(service.url, "test/small", tmp_path / "absent.csv"))


def test_cli(service: FakeService, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values, stamps = series_values(10), timestamps(10)
    path = write_csv(tmp_path / "s.csv", [(t, repr(v)) for t, v in zip(stamps, values,
                                                                        strict=True)])
    assert main([service.url, "test/small", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "timestamp,value,score,flag"
    assert len(out) == 11
    expected = offline_scores(values, 4)
    for line, stamp, value, score in zip(out[1:], stamps, values, expected, strict=True):
        t, v, s, f = line.split(",")
        assert (t, float(v)) == (stamp, value)
        if score is None:
            assert (s, f) == ("", "false")
        else:
            assert float(s) == pytest.approx(score)
            assert f == ("true" if score > 2.0 else "false")

    assert main([service.url, "test/small", str(path), "--value-column", "v"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("rnnad.client: error: ") and "no column 'v'" in captured.err
    assert captured.out == ""  # nothing on stdout when the file is refused
    assert main([service.url, "nope/none", str(path)]) == 2
    assert "unknown series 'nope/none'" in capsys.readouterr().err
