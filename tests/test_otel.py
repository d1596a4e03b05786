"""OTelSink: real requests through a Client against the loopback server,
read back from the OpenTelemetry SDK's in-memory span exporter and metric
reader."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

import minillm
from minillm.contrib.otel import DURATION_BUCKETS, TOKEN_BUCKETS, OTelSink
from minillm.testing import Reply, ScriptedServer, chat_chunk, chat_completion, chat_stream, chat_usage, sse
from minillm.testing.server import Gate, Hang

from .conftest import import_or_skip

sdk: Any = import_or_skip(
    "opentelemetry.sdk",
    reason="the OTelSink tests need opentelemetry-sdk (minillm[otel])",
    required_by="MINILLM_REQUIRE_OTEL",
)

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2", cached_input_per_mtok="0.5")


class Telemetry:
    """An SDK wired to memory: the spans finished and the metrics collected."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def sink(self, **options: Any) -> OTelSink:
        return OTelSink(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options)

    def spans(self) -> Tuple[ReadableSpan, ...]:
        return tuple(self.exporter.get_finished_spans())

    def metrics(self) -> Dict[str, Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            metric.name: metric
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    def points(self, name: str) -> List[Tuple[Dict[str, Any], Any]]:
        """``(attributes, point)`` for every data point of the metric ``name``."""
        return [(dict(point.attributes), point) for point in self.metrics()[name].data.data_points]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    made = Telemetry()
    yield made
    made.tracer_provider.shutdown()
    made.meter_provider.shutdown()


def test_a_completed_request_is_a_chat_span_with_the_gen_ai_attributes_and_the_exact_cost(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], telemetry: Telemetry
) -> None:
    usage = chat_usage(1000, 300, cached_tokens=400, reasoning_tokens=100)
    server.reply(Reply.json(chat_completion("ok", id="chatcmpl-42", usage=usage)))
    client = make_client(on_cost=telemetry.sink(), price=PRICE)
    response = client.complete("Hi")
    (span,) = telemetry.spans()
    assert span.name == "chat test-model" and span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "test-model",
        "gen_ai.response.id": "chatcmpl-42",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 400,
        "gen_ai.usage.reasoning.output_tokens": 100,
        "minillm.cost.usd": "0.0014",  # 600 x 1 + 400 x 0.5 + 300 x 2 per million, exactly
        "minillm.cost.resolution": "resolved",
        "minillm.cost.source": "price",
        "minillm.attempt": 1,
        "minillm.cancelled": False,
        "minillm.failed": False,
        "minillm.booking_id": response.cost.booking_id if response.cost else None,
    }
    assert response.cost is not None and response.cost.usd == Decimal("0.0014")
    duration = response.cost.duration_s
    assert duration is not None and span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time == int(duration * 1e9)


def test_metrics_follow_the_conventions_and_money_adds_up(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], telemetry: Telemetry
) -> None:
    server.reply(Reply.json(chat_completion("ok", usage=chat_usage(10, 4))))
    server.reply(Reply.json(chat_completion("ok", usage=chat_usage(20, 6))))
    client = make_client(on_cost=telemetry.sink(), price=PRICE)
    client.complete("one")
    client.complete("two")
    metrics = telemetry.metrics()
    assert (metrics["gen_ai.client.token.usage"].unit, metrics["gen_ai.client.operation.duration"].unit) == (
        "{token}",
        "s",
    )
    tokens = {
        attributes["gen_ai.token.type"]: point for attributes, point in telemetry.points("gen_ai.client.token.usage")
    }
    assert (tokens["input"].sum, tokens["input"].count, tokens["output"].sum) == (30, 2, 10)
    assert tuple(tokens["input"].explicit_bounds) == TOKEN_BUCKETS
    attributes, _ = telemetry.points("gen_ai.client.token.usage")[0]
    assert {k: v for k, v in attributes.items() if k != "gen_ai.token.type"} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "test-model",
    }
    ((_, duration),) = telemetry.points("gen_ai.client.operation.duration")
    assert duration.count == 2 and tuple(duration.explicit_bounds) == DURATION_BUCKETS
    ((costed, money),) = telemetry.points("minillm.client.cost")
    assert costed["minillm.cost.resolution"] == "resolved" and metrics["minillm.client.cost"].unit == "USD"
    assert money.value == pytest.approx(0.00005, rel=1e-12)  # metrics are doubles; the spans are exact
    ((_, booked),) = telemetry.points("minillm.client.bookings")
    assert booked.value == 2


def test_a_cancelled_stream_is_a_lower_bound_span_and_its_partial_money_a_lower_bound_metric(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], telemetry: Telemetry
) -> None:
    rest = Gate()
    running = chat_usage(50, 1)
    server.reply(Reply.sse([sse(chat_chunk(content="a", usage=running)), sse(chat_chunk(content="b")), rest, Hang()]))
    client = make_client(on_cost=telemetry.sink(), price=PRICE)
    with client.stream("Hi") as stream:
        pieces = iter(stream)
        next(pieces)
        next(pieces)
    rest.open()
    (span,) = telemetry.spans()
    attributes = dict(span.attributes or {})
    assert attributes["minillm.cost.resolution"] == "partial" and attributes["minillm.cancelled"] is True
    assert attributes["minillm.cost.usd"] == "0.000054"  # 50 in, 2 out seen: at least this
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (50, 2)
    assert span.status.status_code is StatusCode.UNSET  # the caller stopped it: not an error
    assert "gen_ai.client.token.usage" not in telemetry.metrics()  # a lower bound is no token count
    ((costed, money),) = telemetry.points("minillm.client.cost")
    assert costed["minillm.cost.resolution"] == "partial" and Decimal(str(money.value)) == Decimal("0.000054")


def test_an_unknown_booking_records_no_money_at_all_never_a_zero(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], telemetry: Telemetry
) -> None:
    server.reply(*[Reply().held(minillm.testing.Drop())] * 3)
    client = make_client(on_cost=telemetry.sink(), price=PRICE)
    with pytest.raises(minillm.APIConnectionError):
        client.complete("Hi")
    spans = telemetry.spans()
    assert [dict(span.attributes or {})["minillm.attempt"] for span in spans] == [1, 2, 3]
    for span in spans:
        attributes = dict(span.attributes or {})
        assert attributes["minillm.cost.resolution"] == "unknown" and attributes["minillm.failed"] is True
        assert not any(name.startswith("gen_ai.usage.") or name == "minillm.cost.usd" for name in attributes)
        assert span.status.status_code is StatusCode.ERROR and attributes["error.type"] == "_OTHER"
    metrics = telemetry.metrics()
    assert "minillm.client.cost" not in metrics and "gen_ai.client.token.usage" not in metrics
    ((counted, booked),) = telemetry.points("minillm.client.bookings")
    assert counted["minillm.cost.resolution"] == "unknown" and booked.value == 3
    ((timed, duration),) = telemetry.points("gen_ai.client.operation.duration")
    assert timed["error.type"] == "_OTHER" and duration.count == 3


def test_meta_is_recorded_only_when_named_and_only_on_the_span(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], telemetry: Telemetry
) -> None:
    server.reply(*[Reply.sse(chat_stream(["a"], usage=chat_usage(3, 1)))] * 2)
    named = make_client(on_cost=telemetry.sink(meta_attributes=("user_id", "plan")), price=PRICE)
    with named.stream("Hi", meta={"user_id": 7, "email": "ann@example.com", "plan": {"tier": "gold"}}) as stream:
        stream.collect()
    silent = make_client(on_cost=telemetry.sink(), price=PRICE)
    with silent.stream("Hi", meta={"user_id": 8, "email": "bob@example.com"}) as stream:
        stream.collect()
    first, second = (dict(span.attributes or {}) for span in telemetry.spans())
    assert {k: v for k, v in first.items() if k.startswith("minillm.meta.")} == {
        "minillm.meta.user_id": 7,
        "minillm.meta.plan": "{'tier': 'gold'}",
    }
    assert not any(k.startswith("minillm.meta.") for k in second)
    for name in telemetry.metrics():
        for attributes, _ in telemetry.points(name):
            assert not any(k.startswith("minillm.meta.") for k in attributes)


@pytest.mark.parametrize(
    ("provider", "named"), [("xai", "x_ai"), ("openrouter", "openrouter"), ("gemini", "gcp.gemini")]
)
def test_providers_are_named_as_the_conventions_name_them(provider: str, named: str, telemetry: Telemetry) -> None:
    telemetry.sink().record(
        minillm.CostInfo(usd=None, resolution=minillm.Resolution.UNPRICED, provider=provider, model="m"), {}
    )
    (span,) = telemetry.spans()
    assert dict(span.attributes or {})["gen_ai.provider.name"] == named


@pytest.mark.parametrize("keys", ["user_id", [1]])
def test_meta_attributes_must_be_meta_keys(keys: Any) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match="meta_attributes"):
        OTelSink(meta_attributes=keys)


def test_without_opentelemetry_the_sink_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(minillm.ConfigurationError, match=r'pip install "minillm\[otel\]"'):
        OTelSink()


def test_importing_minillm_and_its_contrib_package_never_imports_opentelemetry() -> None:
    code = """
        import sys
        import minillm
        import minillm.contrib
        import minillm.contrib.otel
        minillm.Client("openai/test-model", api_key="sk-x", base_url="http://127.0.0.1:9")
        print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
