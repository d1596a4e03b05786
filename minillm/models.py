"""The values minillm hands to its users: :class:`Chunk`, :class:`Response`,
:class:`Usage`, :class:`ToolCall`, :class:`CostInfo` and :class:`Resolution`.

They are provider-neutral: every adapter emits these same shapes with one
meaning (see :class:`Usage`). Wire-format conversion lives in the adapters,
not here. All are immutable except :class:`Chunk` (for speed; treat it as
read-only) and :class:`Response`, whose ``cost`` is
filled in when the request is settled (possibly later, on the background
look-up thread).
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any, Dict, Iterable, List, Optional, Tuple

import attrs

__all__ = ["SOURCES", "AttemptsCost", "Chunk", "CostInfo", "Resolution", "Response", "ToolCall", "Usage"]

#: The normalised finish reasons.
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "cancelled", "paused", "error"})


@attrs.frozen
class Usage:
    """Token counts (and the provider's own money figures) for one request.

    One meaning across providers: ``prompt_tokens`` is every input token
    billed (cache reads and writes included), ``cached_tokens`` the part read
    from cache, ``cache_write_tokens`` the part written to a cache (of which
    ``cache_write_1h_tokens`` with a one-hour lifetime),
    ``completion_tokens`` every output token billed including reasoning,
    ``reasoning_tokens`` the reasoning part of it. Counts are 0 when
    unknown. ``cost`` and ``upstream_inference_cost`` are the provider's
    native money fields (``Decimal``) when it sends them, else None.
    ``service_tier`` is the tier the provider says it served (None when it
    does not say); ``web_search_requests`` the server-side searches billed
    per call; ``image_tokens`` the part of ``prompt_tokens`` spent on
    images, where the provider says (Gemini; 0 elsewhere).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Optional[Decimal] = None
    upstream_inference_cost: Optional[Decimal] = None
    #: OpenRouter "bring your own key": the upstream bill is added to ``cost``.
    is_byok: bool = False
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    service_tier: Optional[str] = None
    web_search_requests: int = 0
    image_tokens: int = 0

    def to_dict(self) -> Dict[str, Any]:
        """Every field as JSON-ready data (money as a decimal string)."""
        from .serialization import value_to_dict

        return value_to_dict(self)


@attrs.frozen
class ToolCall:
    """A tool call requested by the model; ``arguments`` is the complete JSON
    string exactly as the provider streamed it."""

    id: str
    name: str
    arguments: str


@attrs.define
class Chunk:
    """One piece of a stream: new text and/or thinking, and on the final
    pieces the finish reason and usage.

    Treat it as read-only. It is the one value class that is not frozen:
    one is created per streamed token, and a frozen attrs instance costs
    nearly three times as much to create.
    """

    text: str = ""
    thinking: str = ""
    finish_reason: Optional[str] = None
    usage: Optional[Usage] = None


class Resolution(str, enum.Enum):
    """How much of an attempt's cost is known."""

    #: The money is known: the provider's final usage or its own figure.
    RESOLVED = "resolved"
    #: A lower bound: the provider bills at least ``usd``, maybe more (the
    #: attempt was cut short or failed before its final usage arrived).
    PARTIAL = "partial"
    #: Token counts are known, but there is no price for them.
    UNPRICED = "unpriced"
    #: The money is not known (the tokens, when given, are a lower bound).
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value

    @property
    def has_money(self) -> bool:
        """Whether a booking of this resolution carries ``usd``."""
        return self is Resolution.RESOLVED or self is Resolution.PARTIAL


#: Where a booking's money figure came from.
SOURCES = frozenset({"provider", "lookup", "price", "catalog"})


_WITH_MONEY = (Resolution.RESOLVED, Resolution.PARTIAL)


def _check_cost(cost: CostInfo) -> None:
    """The invariants of a :class:`CostInfo`, checked once it is built (one
    pass: every attempt's booking is built through here)."""
    if cost.resolution.__class__ is not Resolution:  # "resolved" would pass for one below
        raise TypeError(f"CostInfo.resolution must be a minillm.Resolution, not {cost.resolution!r}")
    usd = cost.usd
    if usd is not None and type(usd) is not Decimal and not isinstance(usd, Decimal):
        raise TypeError(f"CostInfo.usd must be a Decimal or None, not {type(usd).__name__}")
    if (usd is None) is (cost.resolution in _WITH_MONEY):
        raise ValueError(
            f"CostInfo.usd is {usd!r} but resolution is {cost.resolution.value}: "
            "RESOLVED and PARTIAL costs carry money, the others never do"
        )
    if usd is not None:
        if not usd.is_finite():
            raise ValueError(f"CostInfo.usd is {usd!r}: money is finite")
        if usd.is_signed() and usd and cost.corrects is None:  # below zero (-0 is zero)
            # Only a correction is a difference, which may go down (see ``corrects``).
            raise ValueError(f"CostInfo.usd is {usd!r}: money is never negative")
    attempt = cost.attempt
    if (type(attempt) is not int and (isinstance(attempt, bool) or not isinstance(attempt, int))) or attempt < 1:
        raise ValueError(f"CostInfo.attempt is 1-based, not {attempt!r}")
    source = cost.source
    if source is not None:
        if source not in SOURCES:
            raise ValueError(f"CostInfo.source must be one of {', '.join(sorted(SOURCES))} or None, not {source!r}")
        if usd is None:
            raise ValueError("CostInfo.source names where money came from: a cost without money has none")
    corrects = cost.corrects
    if corrects is not None:
        if not isinstance(corrects, str) or not corrects:
            raise ValueError(f"CostInfo.corrects is the booking id of the booking corrected, not {corrects!r}")
        if cost.resolution is not Resolution.RESOLVED:
            raise ValueError("CostInfo.corrects: a correction books what became known, so it is RESOLVED")


@attrs.frozen(kw_only=True)
class CostInfo:
    """What one attempt cost, as booked to the sink.

    ``usd`` is a ``Decimal`` when ``resolution`` is ``RESOLVED`` (exact) or
    ``PARTIAL`` (a lower bound), and None otherwise -- unknown money is never
    a fake ``0``.
    """

    usd: Optional[Decimal] = None
    resolution: Resolution
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    #: The part of ``prompt_tokens`` written to a cache.
    cache_write_tokens: int = 0
    model: str = ""
    provider: str = ""
    response_id: Optional[str] = None
    byok: bool = False
    #: The service tier the provider says it served (``"default"``,
    #: ``"flex"``, ``"priority"``, ``"batch"``, ...), None when it did not say.
    service_tier: Optional[str] = None
    #: The caller stopped the attempt early (cancelled, broken out of, abandoned).
    cancelled: bool = False
    #: The attempt failed after it may have been billed.
    failed: bool = False
    #: This send's number among all of its request's sends (1-based; retries
    #: and fallbacks count, billed or not).
    attempt: int = 1
    #: Where ``usd`` came from: ``"provider"`` (its own figure in the
    #: response), ``"lookup"`` (an out-of-band look-up), ``"price"`` (the
    #: caller's :class:`~minillm.TokenPrice`), ``"catalog"`` (the maintained
    #: price catalog); None without money.
    source: Optional[str] = None
    #: Identifies this booking: a durable ledger records it once however
    #: often it is delivered. Not part of equality.
    booking_id: Optional[str] = attrs.field(default=None, eq=False)
    #: The booking id of the ``UNKNOWN`` or ``PARTIAL`` booking this one
    #: corrects, once the provider knew what that attempt cost (see
    #: :meth:`~minillm.accounting.ledgers.BaseLedger.resolve_pending`): its
    #: ``usd`` and token counts are the difference between the provider's
    #: figures and what the corrected booking counted, so that the two add
    #: up to them. The one ``usd`` that may be negative: when a lower bound
    #: was above what the provider billed. None for every other booking.
    corrects: Optional[str] = None
    #: Seconds from sending the attempt to its end (its last byte read, or
    #: the moment it was stopped or failed) -- not the wait for an
    #: out-of-band look-up. None when not measured (a booking read back
    #: from a ledger, a provider batch's item). A measurement of this run,
    #: not of what was billed: not part of equality.
    duration_s: Optional[float] = attrs.field(default=None, eq=False)

    def __attrs_post_init__(self) -> None:
        _check_cost(self)

    def to_dict(self) -> Dict[str, Any]:
        """Every field as JSON-ready data (money as a decimal string)."""
        from .serialization import value_to_dict

        return value_to_dict(self)


@attrs.frozen(kw_only=True)
class AttemptsCost:
    """What several attempts of one request cost together: the attempts of
    a structured-output call, each answer that did not validate included
    (``Response.attempts_cost``).

    ``usd`` is the sum of the attempts' money, and ``resolution`` says how
    much that sum is worth, by the same rules as one booking's:

    * ``RESOLVED`` -- every attempt is booked ``RESOLVED``: ``usd`` is exact;
    * ``PARTIAL`` -- some attempt's money is known, but another's is only a
      lower bound, unknown, unpriced or still being looked up: ``usd`` is
      the sum of the money known, a lower bound;
    * ``UNPRICED`` -- every attempt's tokens are known, none has a price;
    * ``UNKNOWN`` -- no money is known at all (``usd`` is None, never 0).

    Token counts are the sums of the bookings' counts (a lower bound too
    when the resolution is not ``RESOLVED``).
    """

    usd: Optional[Decimal] = None
    resolution: Resolution
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    #: how many bookings are summed
    attempts: int = 0
    #: attempts whose booking had not arrived yet (an out-of-band look-up)
    pending: int = 0
    #: the bookings summed, in the order they were made
    costs: Tuple[CostInfo, ...] = ()

    @classmethod
    def of(cls, costs: Iterable[CostInfo], *, pending: int = 0) -> AttemptsCost:
        """The total of ``costs``, with ``pending`` attempts still unbooked."""
        booked = tuple(costs)
        known = [cost.usd for cost in booked if cost.usd is not None]
        every = all(cost.resolution is Resolution.RESOLVED for cost in booked) and not pending
        if not booked and not pending:
            resolution = Resolution.UNKNOWN
        elif known:
            resolution = Resolution.RESOLVED if every else Resolution.PARTIAL
        elif not pending and all(cost.resolution is Resolution.UNPRICED for cost in booked):
            resolution = Resolution.UNPRICED
        else:
            resolution = Resolution.UNKNOWN
        return cls(
            usd=sum(known, Decimal(0)) if known else None,
            resolution=resolution,
            prompt_tokens=sum(cost.prompt_tokens for cost in booked),
            completion_tokens=sum(cost.completion_tokens for cost in booked),
            total_tokens=sum(cost.total_tokens for cost in booked),
            cached_tokens=sum(cost.cached_tokens for cost in booked),
            reasoning_tokens=sum(cost.reasoning_tokens for cost in booked),
            attempts=len(booked),
            pending=pending,
            costs=booked,
        )


@attrs.define(eq=False)
class Response:
    """The result of a request: the whole answer and what it cost.

    ``cost`` is None until the request is settled; a stream whose cost is
    being looked up out of band gets it later, from the look-up thread.
    """

    #: the answer's text (thinking and ``<think>`` blocks taken out)
    text: str = ""
    #: the model's reasoning, where the provider shows it
    thinking: str = ""
    #: the tools the model asked to call, in order
    tool_calls: List[ToolCall] = attrs.Factory(list)
    #: why the answer ended, normalised: ``"stop"``, ``"length"``,
    #: ``"tool_calls"``, ``"content_filter"``, ``"cancelled"``, ``"paused"``
    #: or ``"error"``; None when the provider did not say
    finish_reason: Optional[str] = None
    #: the provider's token counts (None when it sent none)
    usage: Optional[Usage] = None
    #: what was booked for the attempt that answered; None until settled
    cost: Optional[CostInfo] = None
    #: the provider's id for the answer
    id: Optional[str] = None
    #: the model the provider says answered
    model: Optional[str] = None
    #: the provider's answer as parsed JSON when it came as one body (None
    #: for a stream), for what minillm does not read
    raw: Any = attrs.field(default=None, repr=False)
    #: the provider's own reasoning records (signed thinking blocks, thought
    #: signatures, OpenRouter's reasoning_details), to send back next turn
    reasoning_details: List[Dict[str, Any]] = attrs.field(factory=list, repr=False)
    #: every choice, in order, when the provider answered several (OpenAI's
    #: ``n``); empty for one. The response itself is the first.
    choices: List[Response] = attrs.field(factory=list, repr=False)
    #: the answer read against ``response_format``: the parsed JSON, or an
    #: instance of the attrs class asked for; None without one
    parsed: Any = None
    #: what every attempt of a ``response_format`` call cost together
    #: (answers that did not validate included); None without one
    attempts_cost: Optional[AttemptsCost] = attrs.field(default=None, repr=False)

    def to_dict(self) -> Dict[str, Any]:
        """Every field as JSON-ready data, for ``json.dumps``: the usage and
        cost as their own ``to_dict()`` give them (money as decimal
        strings), tool calls and choices as dicts, ``raw`` as the provider
        sent it (None for a stream)."""
        from .serialization import value_to_dict

        return value_to_dict(self)

    def to_message(self) -> Dict[str, Any]:
        """This answer as an OpenAI-shaped assistant message, for the next
        turn of a conversation -- tool calls and reasoning records included,
        so that every provider can continue it."""
        message: Dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call in self.tool_calls
            ]
        elif message["content"] is None:
            message["content"] = ""
        if self.reasoning_details:
            message["reasoning_details"] = [dict(detail) for detail in self.reasoning_details]
        return message
