"""A structured-output call: ask, read the answer against the format, and
-- while ``validation_retries`` last -- show the model its invalid answer
and what is wrong with it, and ask again.

Each try is an ordinary call (its own retries, fallbacks and bookings,
under the same ``meta``); this module only decides whether to try again and
adds up what the tries cost.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..errors import InvalidArgumentError, OutputValidationError
from ..models import AttemptsCost, CostInfo, Response
from ..request import Messages
from .format import answer_of, feedback, output_format, parse

__all__ = ["Collect", "complete_structured", "refuse_in_stream"]

#: Sends one call and returns its response and every booking it made.
Collect = Callable[..., Tuple[Response, List[CostInfo]]]

#: A call that the caller stopped: its answer is not read against the format.
_STOPPED = frozenset({"cancelled", "paused"})


def complete_structured(
    collect: Collect,
    messages: Messages,
    response_format: Any,
    validation_retries: Any,
    options: Mapping[str, Any],
) -> Response:
    """Ask until an answer matches ``response_format``, at most
    ``validation_retries + 1`` times, and return the answer's response with
    ``parsed`` and ``attempts_cost`` set.

    A call the caller stopped (``finish_reason`` ``"cancelled"`` or
    ``"paused"``) is returned as it is, with ``parsed`` None.

    :raises InvalidArgumentError: ``response_format`` or
        ``validation_retries`` cannot be used.
    :raises OutputValidationError: no answer matched.
    """
    if response_format is None:
        raise InvalidArgumentError("validation_retries needs a response_format to validate against")
    if isinstance(validation_retries, bool) or not isinstance(validation_retries, int) or validation_retries < 0:
        raise InvalidArgumentError(f"validation_retries must be an integer >= 0, not {validation_retries!r}")
    output = output_format(response_format)
    history: List[Dict[str, Any]] = (
        [{"role": "user", "content": messages}] if isinstance(messages, str) else [dict(m) for m in messages]
    )
    responses: List[Response] = []
    costs: List[CostInfo] = []
    pending = 0
    found: List[str] = []
    for _ in range(validation_retries + 1):
        response, booked = collect(history, output_format=output, **options)
        responses.append(response)
        costs += booked
        # The last booking of a call not yet made is an out-of-band look-up on its way.
        late = response.cost is None and response.finish_reason not in _STOPPED
        pending += int(late)
        total = AttemptsCost.of(costs, pending=pending)
        if response.finish_reason in _STOPPED:
            response.attempts_cost = total
            return response
        value, found = parse(output, response)
        if not found:
            response.parsed = value
            response.attempts_cost = total
            return response
        history += feedback(output, response, found)
    text, _ = answer_of(output, responses[-1])
    tries = len(responses)
    raise OutputValidationError(
        f"the answer does not match the {output.name} schema after {tries} attempt{'s' if tries > 1 else ''}: "
        + "; ".join(found[:3])
        + (f" (and {len(found) - 3} more)" if len(found) > 3 else ""),
        text=text,
        problems=found,
        responses=responses,
        attempts_cost=AttemptsCost.of(costs, pending=pending),
    )


def refuse_in_stream(response_format: Optional[Any]) -> None:
    """``stream()`` does not take a response format: an answer can only be
    validated whole, and a retry cannot be streamed into the same stream.

    :raises InvalidArgumentError: one was given.
    """
    if response_format is not None:
        raise InvalidArgumentError(
            "stream() takes no response_format: use complete(..., response_format=...), which validates "
            "the whole answer (and retries); to stream JSON, ask for it in the prompt"
        )
