"""Where bookings go: turning ``on_cost`` into a sink, and delivering to it
so that a failing sink never breaks a stream and never loses a booking
silently.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional, Protocol, Union, runtime_checkable

from ..errors import ConfigurationError
from ..models import CostInfo
from ..serialization import cost_to_json

__all__ = ["CostSink", "RecordingSink", "SinkFunction", "as_sink", "deliver"]

log = logging.getLogger("minillm.accounting")

SinkFunction = Callable[[CostInfo, Dict[str, Any]], Any]


@runtime_checkable
class RecordingSink(Protocol):
    """Any object with ``record(cost, meta)``, such as :class:`~minillm.Ledger`."""

    def record(self, cost: CostInfo, meta: Dict[str, Any]) -> Any: ...


CostSink = Union[SinkFunction, RecordingSink]


def as_sink(on_cost: Optional[CostSink]) -> Optional[SinkFunction]:
    """Normalise ``on_cost``: an object's ``record`` method wins over it being
    callable.

    :raises ConfigurationError: ``on_cost`` is neither.
    """
    if on_cost is None:
        return None
    record = getattr(on_cost, "record", None)
    if callable(record):
        return record  # type: ignore[no-any-return]
    if callable(on_cost):
        return on_cost
    raise ConfigurationError(
        f"on_cost must be a callable (cost, meta) or have a record(cost, meta) method, not {type(on_cost).__name__}"
    )


def deliver(sink: Optional[SinkFunction], cost: CostInfo, meta: Dict[str, Any]) -> None:
    """Hand one booking to ``sink``. Never raises: a sink that fails is
    logged at ERROR with every field of the booking, so it can be recovered
    from the log."""
    if sink is None:
        return
    try:
        sink(cost, meta)
    except Exception:
        try:
            fields = cost_to_json(cost)
        except Exception:  # pragma: no cover - the log must still be written
            fields = repr(cost)
        try:
            shown = repr(meta)
        except Exception:
            shown = "<meta that cannot be shown>"
        log.exception("the on_cost sink raised; this booking was NOT recorded there: %s meta=%s", fields, shown)
