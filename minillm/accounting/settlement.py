"""Settlement: deciding what one finished request books, and booking it.

:func:`settle` is the single code path every request's booking goes
through, whether it came from ``complete()``, a stream's ``__exit__``, the
stream generator's ``finally``, ``cancel()``, ``settle()``, a finalizer, or
the interpreter-exit hook. The rules (API section 4):

======================================  ========================================
how the request ended                   what is booked
======================================  ========================================
completed, with usage                   cost from that usage
ended early by the caller, usage seen   cost from that usage, ``cancelled``
early or without usage, look-up exists  looked up in the background:
                                        ``RESOLVED`` when found, else ``UNKNOWN``
early or without usage, no look-up      ``UNKNOWN``
failed (transport, in-band, HTTP)       nothing (the error is raised)
rejected                                nothing
======================================  ========================================

Callers make it exactly-once (a stream holds a lock around the decision);
this module makes it correct.
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Callable, Dict, Optional, Protocol

import attrs

from ..accumulate import StreamState
from ..ids import new_booking_id
from ..models import CostInfo
from .catalog import CatalogPrice
from .lookups import LookupJob, LookupPolicy, lookups
from .pricing import TokenPrice, cost_from_usage, unknown_cost
from .sinks import SinkFunction, deliver

__all__ = ["Booking", "Decision", "Ending", "Held", "decide", "release", "settle"]

log = logging.getLogger("minillm.accounting")


class Ending(enum.Enum):
    """How a request's response ended."""

    COMPLETED = "completed"  # the provider's terminal event arrived
    EARLY = "early"  # the caller stopped it first
    FAILED = "failed"  # transport failure, in-band or HTTP error
    REJECTED = "rejected"  # the caller said: book nothing


class Held(Protocol):
    """Money held back for a request by a budget, until it is booked."""

    def settled(self, cost: CostInfo, meta: Dict[str, Any], sink: Optional[SinkFunction]) -> None:
        """The request booked ``cost`` (already delivered to ``sink``)."""

    def release(self) -> None:
        """The request books nothing: let the money go."""


@attrs.frozen
class Booking:
    """Where and how one request's cost is booked."""

    provider: str
    model: str
    price: Optional[TokenPrice]
    sink: Optional[SinkFunction]
    meta: Dict[str, Any]
    #: fetches the cost of a generation id once: the cost, or None if not yet
    lookup: Optional[Callable[[str, bool], Optional[CostInfo]]] = None
    lookup_policy: LookupPolicy = attrs.field(factory=LookupPolicy)
    #: groups pending look-ups for ``Client.flush``
    owner: object = None
    #: list prices, when the request went to a provider's own service
    catalog: Optional[CatalogPrice] = None
    #: what a budget holds back for this request
    held: Optional[Held] = None
    #: identifies the booking (and the budget's hold) in durable ledgers
    id: str = attrs.field(factory=new_booking_id)

    def unknown(self, response_id: Optional[str], cancelled: bool) -> CostInfo:
        """This request's cost when nothing about its money is known."""
        return unknown_cost(
            model=self.model,
            provider=self.provider,
            response_id=response_id,
            cancelled=cancelled,
            booking_id=self.id,
        )


@attrs.frozen
class Decision:
    """What a finished request books: a cost now, a look-up for later, or
    nothing. Deciding is pure; :meth:`carry_out` calls the sink."""

    booking: Booking
    #: booked at once
    now: Optional[CostInfo] = None
    #: booked later, from the look-up thread
    later: Optional[LookupJob] = None

    def carry_out(self) -> None:
        """Deliver ``now`` to the sink, or queue the look-up, or -- when
        nothing is booked -- let go of what a budget held for it."""
        if self.now is not None:
            _deliver(self.booking, self.now)
        elif self.later is not None:
            lookups.submit(self.later)
        else:
            release(self.booking)


def release(booking: Booking) -> None:
    """The request books nothing: a budget's hold on it is let go."""
    if booking.held is not None:
        booking.held.release()


def _deliver(booking: Booking, cost: CostInfo) -> None:
    deliver(booking.sink, cost, booking.meta)
    if booking.held is not None:
        booking.held.settled(cost, booking.meta, booking.sink)
    if log.isEnabledFor(logging.DEBUG):
        try:
            shown = repr(booking.meta)
        except Exception:  # a log line must never cost a booking
            shown = "<meta that cannot be shown>"
        log.debug(
            "booked %s %s/%s %s usd=%s meta=%s",
            cost.resolution.value,
            cost.provider,
            cost.model,
            cost.response_id,
            cost.usd,
            shown,
        )


def decide(
    booking: Booking,
    state: StreamState,
    ending: Ending,
    *,
    generation_id: Optional[str],
    on_booked: Callable[[CostInfo], None],
) -> Decision:
    """Decide what ``state`` books, according to how it ended.

    ``on_booked`` is called by a look-up, later, with the cost it found (or
    gave up on) just before that goes to the sink; a cost decided now is the
    caller's to record.
    """
    if ending is Ending.FAILED or ending is Ending.REJECTED:
        return Decision(booking)
    cancelled = ending is Ending.EARLY
    # The id is taken from the first place it appears: the header, else the body.
    response_id = generation_id or state.id
    if state.usage is not None:
        cost = cost_from_usage(
            state.usage,
            price=booking.price,
            model=booking.model,
            provider=booking.provider,
            response_id=response_id,
            cancelled=cancelled,
            catalog=booking.catalog,
            booking_id=booking.id,
        )
        return Decision(booking, now=cost)
    lookup_id = response_id
    if booking.lookup is not None and lookup_id:
        fetch = booking.lookup

        def book_later(cost: CostInfo) -> None:
            if cost.booking_id != booking.id:
                cost = attrs.evolve(cost, booking_id=booking.id)
            on_booked(cost)
            _deliver(booking, cost)

        job = LookupJob(
            generation_id=lookup_id,
            fetch=lambda: fetch(lookup_id, cancelled),
            fallback=booking.unknown(lookup_id, cancelled),
            book=book_later,
            owner=booking.owner,
            policy=booking.lookup_policy,
        )
        return Decision(booking, later=job)
    return Decision(booking, now=booking.unknown(response_id, cancelled))


def settle(
    booking: Booking,
    state: StreamState,
    ending: Ending,
    *,
    generation_id: Optional[str],
    on_booked: Callable[[CostInfo], None],
) -> Optional[CostInfo]:
    """Decide and book at once: ``on_booked`` is called with the cost just
    before it goes to the sink (now, or later for a look-up).

    :returns: the cost booked now; None when nothing is booked, or not yet.
    """
    decision = decide(booking, state, ending, generation_id=generation_id, on_booked=on_booked)
    if decision.now is not None:
        on_booked(decision.now)
    decision.carry_out()
    return decision.now
