"""`thrifty trace export` against a local stand-in for the Prometheus HTTP API: the files it
writes load back through the shipped loaders with the same numbers, ranges are split the way
Prometheus needs, and every failure names its flag or the endpoint."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from thrifty.traces import load
from thrifty.traces import prometheus_export as px

START = 1_800_000_000.0
STEP = 60.0


class _FakePrometheus:
    """Answers /api/v1/query_range from ``answer(params) -> (status, body)``; records the calls."""

    def __init__(self, answer: Callable[[dict[str, str]], tuple[int, dict]]) -> None:
        self.answer = answer
        self.calls: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                params = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.path).query))
                outer.calls.append(params)
                status, body = outer.answer(params)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def prometheus() -> Iterator[Callable[..., _FakePrometheus]]:
    servers: list[_FakePrometheus] = []

    def start(answer: Callable[[dict[str, str]], tuple[int, dict]]) -> _FakePrometheus:
        servers.append(_FakePrometheus(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.server.shutdown()
        server.server.server_close()


def _matrix(series: list[tuple[dict[str, str], Callable[[float], float | None]]]) -> Callable:
    """A query_range answer: each series' value at each requested step (None: no sample)."""
    def answer(params: dict[str, str]) -> tuple[int, dict]:
        start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
        times = np.arange(start, end + step / 2, step)
        result = [{"metric": labels, "values": [[t, str(v)] for t in times if (v := value(t)) is not None]}
                  for labels, value in series]
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}
    return answer


def _by_query(cpu: Callable, memory: Callable, rate: Callable | None = None) -> Callable:
    def answer(params: dict[str, str]) -> tuple[int, dict]:
        query = params["query"]
        if "cpu" in query:
            return cpu(params)
        if "memory" in query:
            return memory(params)
        assert rate is not None, query
        return rate(params)
    return answer


WEB = {"namespace": "shop", "pod": "web-0", "container": "app"}
DB = {"namespace": "shop", "pod": "db-0", "container": "postgres"}
OTHER = {"namespace": "kube-system", "pod": "dns-0", "container": "coredns"}


def _config(url: str, steps: int = 30, **kwargs: object) -> px.ExportConfig:
    return px.ExportConfig(prometheus_url=url, start_seconds=START, end_seconds=START + (steps - 1) * STEP,
                           step_seconds=STEP, **kwargs)


def test_exported_usage_loads_back_with_the_same_numbers(prometheus, tmp_path: Path) -> None:
    cpu = _matrix([(WEB, lambda t: 0.25 + 0.1 * ((t - START) // STEP % 3)), (DB, lambda t: 1.5),
                   (OTHER, lambda t: 0.1)])
    memory = _matrix([(WEB, lambda t: 64 * 2**20), (DB, lambda t: 2 * 2**30), (OTHER, lambda t: 2**20)])
    rate = _matrix([({"service": "web"}, lambda t: 12.5)])
    server = prometheus(_by_query(cpu, memory, rate))
    config = _config(server.url, namespaces=("shop",), request_rate_query="sum(rate(http_requests_total[1m]))")
    result = px.export(config, tmp_path, command="thrifty trace export")
    assert (result.containers, result.rate_series, result.steps) == (2, 1, 30)

    usage = load(result.usage_path)
    assert usage.source == "bitbrains"
    containers = {c.name: c for c in usage.containers}
    [web] = [c for name, c in containers.items() if "web-0" in name]
    [db] = [c for name, c in containers.items() if "db-0" in name]
    assert web.step_seconds == STEP and len(web.cpu_usage_millicores) == 30
    np.testing.assert_allclose(web.cpu_usage_millicores[:6], [250, 350, 450, 250, 350, 450], rtol=1e-6)
    np.testing.assert_allclose(db.cpu_usage_millicores, 1500, rtol=1e-6)
    np.testing.assert_allclose(web.memory_usage_bytes, 64 * 2**20, rtol=1e-6)
    np.testing.assert_allclose(db.memory_usage_bytes, 2 * 2**30, rtol=1e-6)
    assert db.cpu_capacity_millicores == 2000, "provisioned ceil(max cores) cores"

    rates = load(result.requests_path)
    assert rates.source == "genai"
    [series] = rates.containers
    np.testing.assert_allclose(series.request_rate_per_second[np.isfinite(series.request_rate_per_second)], 12.5)
    assert "sum(rate(http_requests_total[1m]))" in (tmp_path / "PROVENANCE.md").read_text()


def test_a_step_without_a_sample_stays_missing(prometheus, tmp_path: Path) -> None:
    gap = {START + 5 * STEP, START + 6 * STEP}
    cpu = _matrix([(WEB, lambda t: None if t in gap else 0.5)])
    memory = _matrix([(WEB, lambda t: 2**28)])
    result = px.export(_config(prometheus(_by_query(cpu, memory)).url), tmp_path, command="x")
    [web] = load(result.usage_path).containers
    assert np.isnan(web.cpu_usage_millicores[5:7]).all() and np.isfinite(web.cpu_usage_millicores[:5]).all()


def test_long_ranges_are_split_into_prometheus_sized_queries(prometheus) -> None:
    """Prometheus refuses more than 11,000 points per series (its query_range limit)."""
    server = prometheus(_matrix([(WEB, lambda t: 1.0)]))
    steps = 25_005
    [series] = px.query_range(_config(server.url, steps=steps), "cpu", "--cpu-query")
    assert len(server.calls) >= 3
    assert all((float(c["end"]) - float(c["start"])) / STEP + 1 <= 11_000 for c in server.calls)
    assert len(series.values) == steps and np.all(series.values == 1.0)


@pytest.mark.parametrize(("answer", "message"), [
    pytest.param(lambda p: (400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 4"}),
                 "--cpu-query: Prometheus at http", id="bad-query"),
    pytest.param(lambda p: (200, {"status": "success", "data": {"resultType": "vector", "result": []}}),
                 "--cpu-query: want a range vector", id="not-a-range"),
    pytest.param(_matrix([({"namespace": "shop", "pod": "web-0"}, lambda t: 1.0)]),
                 "lacks the label(s) container", id="missing-label"),
    pytest.param(_matrix([]), "no container has both CPU and memory series", id="nothing-in-range"),
])
def test_failures_name_the_flag_or_the_endpoint(prometheus, tmp_path: Path, answer, message: str) -> None:
    server = prometheus(answer)
    with pytest.raises(px.ExportError, match="parse error" if "bad" in message else None) as error:
        px.export(_config(server.url), tmp_path, command="x")
    assert message in str(error.value)
    assert not (tmp_path / "usage.tar.gz").exists(), "nothing is written when the export fails"


def test_an_unreachable_prometheus_is_named(tmp_path: Path) -> None:
    with pytest.raises(px.ExportError, match=r"--prometheus http://127.0.0.1:9: no answer"):
        px.export(_config("http://127.0.0.1:9"), tmp_path, command="x")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"prometheus_url": "localhost:9090"}, "--prometheus: want an http"),
    ({"step_seconds": 0.0}, "--step-seconds: must be > 0"),
    ({"end_seconds": START}, "the range is empty"),
])
def test_config_is_checked(kwargs: dict, message: str) -> None:
    base = {"prometheus_url": "http://p:9090", "start_seconds": START, "end_seconds": START + 3600}
    with pytest.raises(px.ExportError, match=message):
        px.ExportConfig(**(base | kwargs))
