"""The money of a provider batch: each item's budget hold before the batch
is sent, and each item's booking once its result is in.

An item is one attempt the provider bills at its batch rate. Its booking
goes through :mod:`minillm.accounting.settlement` like any attempt's --
usage from the answer (through the adapter and the fold), served at
``service_tier="batch"``, priced by the route's pricer -- under a booking
id derived from the job and the item. Booking again after a crash (between
the ledger's write and the journal's) therefore books nothing new: every
minillm ledger records a booking id once. An item the provider did not
answer (errored, expired, cancelled) books nothing and lets its hold go.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Dict, Mapping, Optional, Sequence

import attrs

from ..accounting.budget import Budget, Hold
from ..accounting.settlement import Booking, Outcome, decide
from ..accounting.sinks import SinkFunction
from ..accumulate import StreamState, accumulate
from ..routes import Route
from .items import BatchResult
from .state import ItemRecord

__all__ = ["BATCH_TIER", "HOLD_SECONDS", "Settler"]

log = logging.getLogger("minillm.batch")

#: The service tier every item of a provider batch is served -- and billed -- at.
BATCH_TIER = "batch"

#: How long a budget holds an item's worst case: the providers' 24-hour
#: window, and an hour to collect the results.
HOLD_SECONDS = 25 * 3600.0


class Settler:
    """Holds and books the items of one provider batch job.

    :param uid: the job's uid, from which booking ids are made.
    :param base_meta: the client's default meta, under each item's own.
    """

    def __init__(
        self,
        route: Route,
        *,
        uid: str,
        sink: Optional[SinkFunction],
        budget: Optional[Budget],
        base_meta: Mapping[str, Any],
    ) -> None:
        self.route = route
        self.uid = uid
        self.sink = sink
        self.budget = budget
        self.base_meta = dict(base_meta)

    def booking_id(self, index: int) -> str:
        """The id of item ``index``'s booking and hold: the same in every
        run of the job, and in no other job."""
        return f"batch-{self.uid}-{index}"

    def meta(self, item: ItemRecord) -> Dict[str, Any]:
        return {**self.base_meta, **item.meta}

    # -- holds ------------------------------------------------------------------------

    def hold(self, items: Sequence[ItemRecord], *, again: bool = False) -> None:
        """Hold every item's worst case, or none of them.

        :param again: the job held them before (a run that stopped before
            sending them): each earlier hold is let go of first, so that it
            is not counted twice.
        :raises BudgetExceeded: the budget cannot take them all.
        """
        budget = self.budget
        if budget is None or not items:
            return
        if again:
            self.release(items)
        holds = []
        for item in items:
            assert item.worst is not None, "an item held by a budget has its worst case"
            holds.append((self.booking_id(item.index), item.worst, self.meta(item)))
        budget.hold_many(holds, seconds=max(budget.hold_seconds, HOLD_SECONDS))

    def release(self, items: Sequence[ItemRecord]) -> None:
        """Let go of the holds of ``items`` (they will not be sent)."""
        for item in items:
            hold = self._hold_of(item.index)
            if hold is not None:
                hold.release()

    def _hold_of(self, index: int) -> Optional[Hold]:
        return None if self.budget is None else Hold(self.budget, self.booking_id(index))

    # -- results ----------------------------------------------------------------------

    def answered(self, item: ItemRecord, body: Any, batch_id: str) -> BatchResult:
        """Book item ``item``, answered with ``body``, and return its result.

        The answer is read the way a real-time answer is: an error or a body
        that cannot be read still books what the provider may bill (as a
        failed attempt), and the result says what went wrong.
        """
        route = self.route
        state = StreamState()
        for event in route.pipeline(route.adapter.parse_body(body)):
            accumulate(state, event)
        if state.usage is not None:
            state.usage = attrs.evolve(state.usage, service_tier=BATCH_TIER)
        failed = state.error is not None
        booking = Booking(
            provider=route.provider,
            model=route.name,
            pricer=route.pricer,
            sink=self.sink,
            meta={**self.meta(item), "provider_batch": batch_id},
            attempt=1,
            hold=self._hold_of(item.index),
            id=self.booking_id(item.index),
        )
        decision = decide(booking, Outcome.FAILED if failed else Outcome.COMPLETED, state)
        decision.carry_out()
        if failed:
            assert state.error is not None
            return BatchResult(
                index=item.index,
                id=item.id,
                cost=decision.now,
                error=f"errored: {state.error.type or 'error'}: {state.error.message}",
                attempts=1,
            )
        response = state.to_response()
        return BatchResult(
            index=item.index,
            id=item.id,
            text=response.text,
            finish_reason=response.finish_reason,
            usage=state.usage,
            cost=decision.now,
            attempts=1,
        )

    def unanswered(self, item: ItemRecord, error: str, *, attempted: bool) -> BatchResult:
        """Item ``item`` books nothing (the provider does not bill it): its
        hold is let go of, and its result says why."""
        self.release([item])
        return BatchResult(index=item.index, id=item.id, error=error, attempts=1 if attempted else 0)


def total_usd(results: Sequence[Optional[BatchResult]]) -> Decimal:
    """The known money of ``results``."""
    return sum(
        (r.cost.usd for r in results if r is not None and r.cost is not None and r.cost.usd is not None), Decimal(0)
    )
