"""Bookings as OpenTelemetry spans and metrics: :class:`OTelSink`.

Each booking -- one attempt -- becomes one ``CLIENT`` span named
``chat {model}`` and a few measurements, under the OpenTelemetry GenAI
semantic conventions as released in semconv v1.41 (development status):

* span attributes ``gen_ai.operation.name``, ``gen_ai.provider.name``,
  ``gen_ai.request.model``, ``gen_ai.response.id``,
  ``gen_ai.usage.input_tokens`` (every input token, cache reads and writes
  included), ``gen_ai.usage.output_tokens`` (reasoning included),
  ``gen_ai.usage.cache_read.input_tokens``,
  ``gen_ai.usage.cache_creation.input_tokens``,
  ``gen_ai.usage.reasoning.output_tokens``; a failed attempt has status
  ERROR and ``error.type``;
* the histograms ``gen_ai.client.token.usage`` (``{token}``, by
  ``gen_ai.token.type`` = ``input`` / ``output``: v1.41 has no cache token
  type, so cache counts are span attributes only) and
  ``gen_ai.client.operation.duration`` (``s``), with the advised buckets.

The conventions have no cost yet, so minillm's own names carry it: on the
span ``minillm.cost.usd`` -- a **string**, the exact decimal, because a
double cannot hold every amount of money and a backend can parse a string
-- ``minillm.cost.resolution``, ``minillm.cost.source``,
``minillm.attempt``, ``minillm.cancelled``, ``minillm.failed``,
``minillm.booking_id``; and the counters ``minillm.client.cost`` (``USD``,
a double: metrics are floating point) and ``minillm.client.bookings``
(``{booking}``), both by ``minillm.cost.resolution``. Unknown money is
never recorded as ``0``: an ``UNKNOWN`` or ``UNPRICED`` booking has no
``minillm.cost.usd`` and adds nothing to ``minillm.client.cost``, only to
``minillm.client.bookings``. Token counts go into the histogram only when
they are the provider's final ones (``RESOLVED``, ``UNPRICED``); those seen
before an attempt was cut short are a lower bound, on the span only.

``meta`` can be personal data: none of it is recorded unless named in
``meta_attributes``, and then only on the span (as ``minillm.meta.<key>``),
never on metrics, where every distinct value would be a new series.

opentelemetry-api is imported when a sink is made, not before: install it
with ``pip install "minillm[otel]"``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Sequence, Tuple, Union

from .._version import __version__
from ..errors import InvalidArgumentError
from ..extras import require
from ..models import CostInfo, Resolution

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["OTelSink"]

#: minillm's providers under the conventions' well-known
#: ``gen_ai.provider.name`` values; any other keeps its own name, as the
#: conventions ask.
PROVIDER_NAMES: Mapping[str, str] = {
    "anthropic": "anthropic",
    "azure": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "deepseek": "deepseek",
    "gemini": "gcp.gemini",
    "groq": "groq",
    "mistral": "mistral_ai",
    "openai": "openai",
    "vertex": "gcp.vertex_ai",
    "xai": "x_ai",
}

#: The conventions' advised bucket boundaries.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

#: The only operation minillm makes.
OPERATION = "chat"

#: What ``error.type`` says when the attempt failed: a booking does not
#: carry its exception, and the conventions name this value for that case.
ERROR_TYPE = "_OTHER"

_FINAL_COUNTS = (Resolution.RESOLVED, Resolution.UNPRICED)

AttributeValue = Union[str, bool, int, float]


def _import_opentelemetry() -> Tuple[Any, Any]:
    return require("opentelemetry.trace", what="OTelSink"), require("opentelemetry.metrics", what="OTelSink")


class OTelSink:
    """Pass as ``on_cost=``: records each booking as a span and metrics
    (see the module docstring for every name).

    :param tracer_provider: where spans go; None is the global one.
    :param meter_provider: where metrics go; None is the global one.
    :param meta_attributes: the ``meta`` keys recorded on the span (as
        ``minillm.meta.<key>``); none by default, as meta may be personal data.
    :raises ConfigurationError: the OpenTelemetry API is not installed.

    Thread-safe: the OpenTelemetry API is. A span ends when the booking is
    made and starts ``duration_s`` earlier; a cost found by an out-of-band
    look-up is booked (and so ends its span) when the look-up finds it.
    """

    def __init__(
        self,
        tracer_provider: Optional[TracerProvider] = None,
        meter_provider: Optional[MeterProvider] = None,
        *,
        meta_attributes: Sequence[str] = (),
    ) -> None:
        if isinstance(meta_attributes, str) or not all(isinstance(key, str) for key in meta_attributes):
            raise InvalidArgumentError(f"meta_attributes must be a sequence of meta keys, not {meta_attributes!r}")
        trace, metrics = _import_opentelemetry()
        self._span_kind = trace.SpanKind.CLIENT
        self._error = trace.Status(trace.StatusCode.ERROR)
        self.meta_attributes = tuple(meta_attributes)
        self._tracer = trace.get_tracer("minillm", __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter("minillm", __version__, meter_provider=meter_provider)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._cost = meter.create_counter(
            "minillm.client.cost", unit="USD", description="Money booked: exact, or a lower bound (partial)."
        )
        self._bookings = meter.create_counter(
            "minillm.client.bookings",
            unit="{booking}",
            description="Attempts booked, by how much of their cost is known.",
        )

    def record(self, cost: CostInfo, meta: Dict[str, Any]) -> None:
        """Record one booking."""
        common: Dict[str, AttributeValue] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": PROVIDER_NAMES.get(cost.provider, cost.provider),
            "gen_ai.request.model": cost.model,
        }
        self._span(cost, meta, common)
        if cost.resolution in _FINAL_COUNTS:
            self._tokens.record(cost.prompt_tokens, {**common, "gen_ai.token.type": "input"})
            self._tokens.record(cost.completion_tokens, {**common, "gen_ai.token.type": "output"})
        if cost.duration_s is not None:
            timed = {**common, "error.type": ERROR_TYPE} if cost.failed else common
            self._duration.record(cost.duration_s, timed)
        counted = {**common, "minillm.cost.resolution": cost.resolution.value}
        self._bookings.add(1, counted)
        if cost.usd is not None:
            self._cost.add(float(cost.usd), counted)

    def _span(self, cost: CostInfo, meta: Mapping[str, Any], common: Mapping[str, AttributeValue]) -> None:
        attributes: Dict[str, AttributeValue] = dict(common)
        if cost.response_id:
            attributes["gen_ai.response.id"] = cost.response_id
        # A count seen before an attempt was cut short is a lower bound, and
        # a zero there means "not seen": only counts that were seen are set.
        final = cost.resolution in _FINAL_COUNTS
        for name, count in (
            ("gen_ai.usage.input_tokens", cost.prompt_tokens),
            ("gen_ai.usage.output_tokens", cost.completion_tokens),
            ("gen_ai.usage.cache_read.input_tokens", cost.cached_tokens),
            ("gen_ai.usage.cache_creation.input_tokens", cost.cache_write_tokens),
            ("gen_ai.usage.reasoning.output_tokens", cost.reasoning_tokens),
        ):
            if count or (final and name in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")):
                attributes[name] = count
        if cost.usd is not None:
            attributes["minillm.cost.usd"] = format(cost.usd, "f")
        attributes["minillm.cost.resolution"] = cost.resolution.value
        if cost.source is not None:
            attributes["minillm.cost.source"] = cost.source
        attributes["minillm.attempt"] = cost.attempt
        attributes["minillm.cancelled"] = cost.cancelled
        attributes["minillm.failed"] = cost.failed
        if cost.booking_id is not None:
            attributes["minillm.booking_id"] = cost.booking_id
        if cost.service_tier is not None:
            attributes["minillm.service_tier"] = cost.service_tier
        for key in self.meta_attributes:
            value = meta.get(key)
            if value is not None:
                attributes[f"minillm.meta.{key}"] = value if isinstance(value, (str, bool, int, float)) else str(value)
        if cost.failed:
            attributes["error.type"] = ERROR_TYPE
        ended = time.time_ns()
        started = ended - int(cost.duration_s * 1e9) if cost.duration_s is not None else ended
        span = self._tracer.start_span(
            f"{OPERATION} {cost.model}", kind=self._span_kind, attributes=attributes, start_time=started
        )
        if cost.failed:
            span.set_status(self._error)
        span.end(end_time=ended)

    def __repr__(self) -> str:
        return f"OTelSink(meta_attributes={self.meta_attributes!r})"
