"""Settlement: what one attempt books, and booking it.

The unit of accounting is the **attempt** -- one request sent to one
provider. Every attempt the provider may bill is booked exactly once; one it
certainly did not bill books nothing. :func:`decide` is the whole table
(API section 4); a call makes it exactly-once (one decision per attempt,
under the call's lock), this module makes it right.

=================================================  ==========================================
how the attempt ended (:class:`Outcome`)           what is booked
=================================================  ==========================================
the provider's final usage arrived                 ``RESOLVED`` from it (``UNPRICED``
                                                   without a price)
cut short by the caller (``CUT_SHORT``), or        the provider's look-up when it has one
failed after the response began (``FAILED``),      (later, on the background thread):
or completed without final usage                   ``RESOLVED`` when found; otherwise
                                                   ``PARTIAL`` from what was seen -- a lower
                                                   bound -- or ``UNKNOWN`` when nothing was
sent, but no response status came back             ``UNKNOWN``, ``failed`` (a look-up when an
(``UNANSWERED``)                                   id is known)
never reached the provider, or answered with an    nothing
error status (``UNBILLED``); ``REJECTED``
=================================================  ==========================================

``PARTIAL`` counts output tokens from what streamed when the provider's own
count is still a placeholder (Anthropic's ``message_start`` says one token):
providers send at least one token per content delta, so the number of
deltas is a lower bound.
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Callable, Dict, Optional, Protocol

import attrs

from .. import runtime
from ..accumulate import StreamState
from ..ids import new_booking_id
from ..models import CostInfo, Resolution, Usage
from .lookups import LookupJob, LookupPolicy
from .pricing import MalformedMoneyError, Pricer, native_cost
from .sinks import SinkFunction, deliver

__all__ = ["Booking", "Decision", "Held", "Outcome", "decide"]

log = logging.getLogger("minillm.accounting")


class Outcome(enum.Enum):
    """How one attempt ended, as the ledger sees it."""

    #: the provider's terminal event (or a whole body) arrived
    COMPLETED = "completed"
    #: the caller stopped it after the provider had accepted it
    CUT_SHORT = "cut short"
    #: it failed after the response began (a timeout, a dropped connection,
    #: an in-band or malformed event)
    FAILED = "failed"
    #: it was sent, but no response status came back
    UNANSWERED = "unanswered"
    #: it never reached the provider, or was answered with an error status
    UNBILLED = "unbilled"
    #: the caller said: book nothing
    REJECTED = "rejected"

    @property
    def billable(self) -> bool:
        return self not in _UNBILLABLE


#: Outcomes that book nothing (by identity: every attempt is decided here).
_UNBILLABLE = (Outcome.UNBILLED, Outcome.REJECTED)
_CUT_SHORT = Outcome.CUT_SHORT
_RESOLVED = Resolution.RESOLVED
_UNPRICED = Resolution.UNPRICED
_FAILED = (Outcome.FAILED, Outcome.UNANSWERED)


class Held(Protocol):
    """Money a budget holds for an attempt until the attempt is booked."""

    def settled(self, cost: CostInfo, meta: Dict[str, Any], sink: Optional[SinkFunction]) -> None:
        """The attempt booked ``cost`` (already delivered to ``sink``)."""

    def release(self) -> None:
        """The attempt books nothing: let the money go."""


#: Fetches what a generation cost: its usage with the provider's own figure,
#: or None when the provider does not have it yet.
Lookup = Callable[[str], Optional[Usage]]

_DEFAULT_LOOKUPS = LookupPolicy()
_NO_USAGE = Usage()


class Booking:
    """Where and how one attempt is booked. Immutable by convention; made
    once per attempt, on the hot path (a plain class: no validation to pay)."""

    __slots__ = (
        "attempt",
        "hold",
        "id",
        "lookup",
        "lookup_policy",
        "meta",
        "model",
        "owner",
        "pricer",
        "provider",
        "sink",
    )

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        pricer: Pricer,
        sink: Optional[SinkFunction],
        meta: Dict[str, Any],
        attempt: int,
        lookup: Optional[Lookup] = None,
        lookup_policy: Optional[LookupPolicy] = None,
        owner: object = None,
        hold: Optional[Held] = None,
        id: Optional[str] = None,  # noqa: A002 - it is the booking's id
    ) -> None:
        self.provider = provider
        self.model = model
        self.pricer = pricer
        self.sink = sink
        self.meta = meta
        #: this send's number among its request's sends
        self.attempt = attempt
        self.lookup = lookup
        self.lookup_policy = lookup_policy or _DEFAULT_LOOKUPS
        #: groups pending look-ups for ``Client.flush``
        self.owner = owner
        #: what a budget holds for this attempt
        self.hold = hold
        #: identifies the booking (and the budget's hold) in durable ledgers
        self.id = id or new_booking_id()

    def cost(
        self,
        usage: Optional[Usage],
        resolution: Resolution,
        response_id: Optional[str],
        outcome: Outcome,
        usd: Any = None,
        source: Optional[str] = None,
        duration: Optional[float] = None,
    ) -> CostInfo:
        """This attempt's :class:`~minillm.CostInfo`; ``duration`` is how
        long it took, in seconds."""
        counts = _NO_USAGE if usage is None else usage
        return CostInfo(
            usd=usd,
            resolution=resolution,
            prompt_tokens=counts.prompt_tokens,
            completion_tokens=counts.completion_tokens,
            total_tokens=counts.total_tokens,
            cached_tokens=counts.cached_tokens,
            reasoning_tokens=counts.reasoning_tokens,
            cache_write_tokens=counts.cache_write_tokens,
            model=self.model,
            provider=self.provider,
            response_id=response_id,
            byok=counts.is_byok,
            service_tier=counts.service_tier,
            cancelled=outcome is _CUT_SHORT,
            failed=outcome in _FAILED,
            attempt=self.attempt,
            source=source if usd is not None else None,
            booking_id=self.id,
            duration_s=duration,
        )


class Decision:
    """What an attempt books: a cost now, a look-up for later, or nothing.
    Deciding is pure; :meth:`carry_out` calls the sink."""

    __slots__ = ("booking", "later", "now")

    def __init__(self, booking: Booking, now: Optional[CostInfo] = None, later: Optional[LookupJob] = None) -> None:
        self.booking = booking
        #: booked at once
        self.now = now
        #: booked later, from the look-up thread
        self.later = later

    def carry_out(self) -> None:
        """Deliver ``now`` to the sink, or queue the look-up, or -- when
        nothing is booked -- let go of what a budget held for it."""
        if self.now is not None:
            book(self.booking, self.now)
        elif self.later is not None:
            runtime.lookups.submit(self.later)
        elif self.booking.hold is not None:
            self.booking.hold.release()


def book(booking: Booking, cost: CostInfo) -> None:
    """Deliver ``cost`` to the booking's sink, then to its budget's ledger."""
    deliver(booking.sink, cost, booking.meta)
    if booking.hold is not None:
        booking.hold.settled(cost, booking.meta, booking.sink)
    if log.isEnabledFor(logging.DEBUG):
        try:
            shown = repr(booking.meta)
        except Exception:  # a log line must never cost a booking
            shown = "<meta that cannot be shown>"
        log.debug(
            "booked %s %s/%s attempt %d %s usd=%s meta=%s",
            cost.resolution.value,
            cost.provider,
            cost.model,
            cost.attempt,
            cost.response_id,
            cost.usd,
            shown,
        )


def decide(
    booking: Booking,
    outcome: Outcome,
    state: Optional[StreamState],
    *,
    generation_id: Optional[str] = None,
    on_booked: Callable[[CostInfo], None] = lambda cost: None,
    duration: Optional[float] = None,
) -> Decision:
    """Decide what an attempt that ended as ``outcome`` books, from what it
    saw (``state``; None when no response began). ``duration`` (seconds,
    from sending to now) goes on every cost it books, a look-up's too: the
    look-up's wait is not the attempt's.

    ``on_booked`` is called by a look-up, later, with the cost it found (or
    gave up on) just before that goes to the sink; a cost decided now is the
    caller's to record.
    """
    if outcome in _UNBILLABLE:
        return Decision(booking)
    # The id is taken from the first place it appears: the header, else the body.
    response_id = generation_id or (state.id if state is not None else None)
    final = state.final_usage if state is not None else None
    if final is not None:
        try:
            usd, source = booking.pricer.money(final)
        except MalformedMoneyError as exc:
            return Decision(booking, now=_not_money(booking, final, response_id, outcome, exc, duration))
        # Positional, and the members bound once: every finished attempt
        # passes here.
        cost = booking.cost(
            final, _RESOLVED if usd is not None else _UNPRICED, response_id, outcome, usd, source, duration
        )
        return Decision(booking, cost)
    seen = _lower_bound(booking, outcome, state, response_id, duration)
    if booking.lookup is not None and response_id:
        return Decision(booking, later=_lookup_job(booking, outcome, response_id, seen, on_booked, duration))
    return Decision(booking, now=seen)


def _lower_bound(
    booking: Booking,
    outcome: Outcome,
    state: Optional[StreamState],
    response_id: Optional[str],
    duration: Optional[float],
) -> CostInfo:
    """What an attempt without final usage is known to have cost at least:
    ``PARTIAL`` from the usage and output seen, ``UNKNOWN`` (with the tokens
    seen) without a price, ``UNKNOWN`` when nothing was seen."""
    usage = state.usage if state is not None else None
    deltas = state.output_deltas if state is not None else 0
    if usage is None and deltas == 0:
        return booking.cost(
            None, resolution=Resolution.UNKNOWN, response_id=response_id, outcome=outcome, duration=duration
        )
    if usage is None:
        usage = Usage(completion_tokens=deltas, total_tokens=deltas)
    elif deltas > usage.completion_tokens:
        usage = attrs.evolve(
            usage, completion_tokens=deltas, total_tokens=usage.total_tokens - usage.completion_tokens + deltas
        )
    try:
        usd, source = booking.pricer.money(usage)
    except MalformedMoneyError as exc:
        return _not_money(booking, usage, response_id, outcome, exc, duration)
    if usd is None:
        return booking.cost(
            usage, resolution=Resolution.UNKNOWN, response_id=response_id, outcome=outcome, duration=duration
        )
    return booking.cost(
        usage,
        resolution=Resolution.PARTIAL,
        response_id=response_id,
        outcome=outcome,
        usd=usd,
        source=source,
        duration=duration,
    )


def _not_money(
    booking: Booking,
    usage: Usage,
    response_id: Optional[str],
    outcome: Outcome,
    error: MalformedMoneyError,
    duration: Optional[float],
) -> CostInfo:
    """The booking of an attempt whose provider sent a figure that is not
    money: ``UNKNOWN`` with its tokens, and an error in the log -- a
    malformed response, never a negative or absurd booking."""
    log.error(
        "%s sent a malformed response for %s (attempt %d, %s): %s; booked UNKNOWN with its tokens",
        booking.provider,
        booking.model,
        booking.attempt,
        response_id,
        error,
    )
    return booking.cost(
        usage, resolution=Resolution.UNKNOWN, response_id=response_id, outcome=outcome, duration=duration
    )


def _lookup_job(
    booking: Booking,
    outcome: Outcome,
    generation_id: str,
    fallback: CostInfo,
    on_booked: Callable[[CostInfo], None],
    duration: Optional[float],
) -> LookupJob:
    lookup = booking.lookup
    assert lookup is not None

    def fetch() -> Optional[CostInfo]:
        usage = lookup(generation_id)
        if usage is None:
            return None
        try:
            usd, source = native_cost(usage), "lookup"
        except MalformedMoneyError as exc:
            return _not_money(booking, usage, generation_id, outcome, exc, duration)
        if usd is None:
            usd, source = booking.pricer.list_price(usage)  # type: ignore[assignment]
        resolution = Resolution.RESOLVED if usd is not None else Resolution.UNPRICED
        return booking.cost(
            usage,
            resolution=resolution,
            response_id=generation_id,
            outcome=outcome,
            usd=usd,
            source=source,
            duration=duration,
        )

    def book_later(cost: CostInfo) -> None:
        on_booked(cost)
        book(booking, cost)

    return LookupJob(
        generation_id=generation_id,
        fetch=fetch,
        fallback=fallback,
        book=book_later,
        owner=booking.owner,
        policy=booking.lookup_policy,
    )
