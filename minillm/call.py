"""A call: one request, from its first send to its last booking.

``Client.complete()`` and ``Client.stream()`` each make one :class:`!Call`.
The call owns the request (built and validated once), the routes it may go
to (the client's primary, then its fallbacks), the budget, the total
deadline and the cancellation, and its attempts. An :class:`!Attempt` is one
send to one route: its :class:`!Exchange` (through which
any thread stops it), its response, what it saw, and its booking. Nothing
here holds a reference to the client.

The life of a call
------------------
* :meth:`!Call.open` sends attempts -- retried under the route's policy, then
  on the fallbacks -- until one is answered with a success status. Every
  attempt that fails is booked as it ends, by what the provider may bill
  for it (:mod:`!minillm.accounting.settlement`), and its error goes on to
  the one retry loop.
* :func:`!drive` is the one reader: it folds the current attempt's events
  and yields its chunks. A stream is this generator; ``complete()`` is the
  same generator read to the end. An error the provider reports before any
  output, if retryable, books the attempt and carries the call on with a
  new one, through the same loop as :meth:`!Call.open`.
* How the call ended (:class:`!Ending`) decides the last attempt's outcome;
  :meth:`!Call.book` books it exactly once, whichever thread gets there
  first -- the reader's ``finally``, ``__exit__``, ``cancel()``, a token, a
  finalizer, or the interpreter's exit.

Thread safety: one thread reads a call; :meth:`!Call.stop`, :meth:`!Call.book`
and :meth:`!Call.reject` may come from any thread. Decisions are made under
the call's lock; sinks are called outside it.
"""

from __future__ import annotations

import enum
import functools
import json
import logging
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from . import requestlog, runtime
from .accounting.budget import Budget, worst_case
from .accounting.lookups import LookupPolicy
from .accounting.settlement import Booking, Decision, Outcome, decide
from .accounting.sinks import SinkFunction
from .accumulate import StreamState, accumulate
from .boundary import kept
from .cancellation import CancellationToken, Stop
from .counting import counted_for_hold
from .errors import (
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceeded,
    InvalidArgumentError,
    MiniLLMError,
    StreamError,
    StreamTimeoutError,
)
from .events import Event, ProviderError
from .ids import new_booking_id
from .models import Chunk, CostInfo, Response
from .redaction import excerpt
from .request import ChatRequest
from .routes import Route
from .timeouts import Timeout
from .transports import Exchange, HTTPRequest, HTTPResponse, Interrupted

__all__ = ["Attempt", "Call", "Ending", "drive"]

log = logging.getLogger("minillm.client")

#: Errors a fallback would meet again: the request itself, the key, a
#: budget's decision.
_FINAL = (BadRequestError, AuthenticationError, InvalidArgumentError, BudgetExceeded)


class Ending(enum.Enum):
    """How a call ended -- and so how its last attempt did."""

    #: the provider's terminal event (or a whole body) arrived
    COMPLETED = "completed"
    #: the caller stopped it first
    EARLY = "early"
    #: it failed (the error was raised)
    FAILED = "failed"
    #: the caller said: book nothing
    REJECTED = "rejected"


_OUTCOMES = {
    Ending.COMPLETED: Outcome.COMPLETED,
    Ending.EARLY: Outcome.CUT_SHORT,
    Ending.FAILED: Outcome.FAILED,
    Ending.REJECTED: Outcome.REJECTED,
}


class _Stopped(Exception):  # noqa: N818 - control flow, not a failure
    """The caller stopped the call before a response arrived (internal)."""


class Attempt:
    """One send of a call to one route, and what it saw."""

    __slots__ = (
        "asked",
        "booking",
        "books",
        "cost",
        "events",
        "exchange",
        "header_id",
        "http",
        "number",
        "raw",
        "response",
        "route",
        "settled",
        "started",
        "state",
        "status",
        "streamed",
    )

    def __init__(self, number: int, route: Route, booking: Booking, asked: ChatRequest) -> None:
        self.number = number
        self.route = route
        self.booking = booking
        #: the call's request (what the caller asked for)
        self.asked = asked
        self.exchange = Exchange()
        self.response: Optional[HTTPResponse] = None
        self.events: Iterator[Event] = iter(())
        self.state = StreamState()
        #: the generation id from the response headers
        self.header_id: Optional[str] = None
        #: the parsed JSON of a whole body (``Response.raw``)
        self.raw: Any = None
        #: the body is an event stream (not one whole JSON answer)
        self.streamed = False
        #: decided: booked, or certainly not billable
        self.settled = False
        #: decided to book something (now, or after a look-up)
        self.books = False
        self.cost: Optional[CostInfo] = None
        #: what was sent (None until built); its headers are never shown
        self.http: Optional[HTTPRequest] = None
        #: when it was sent (``time.monotonic()``; None until then)
        self.started: Optional[float] = None
        #: the response's HTTP status (kept when an error status lets the response go)
        self.status: Optional[int] = None

    def decide(self, outcome: Outcome, on_booked: Callable[[CostInfo], None]) -> Decision:
        """What this attempt books; call once, under the call's lock, and
        hand the decision to :func:`_carry_out` (the exit waits for it from
        here on)."""
        self.settled = True
        seen = self.state if self.response is not None else None
        duration = None if self.started is None else time.monotonic() - self.started

        def booked_later(cost: CostInfo) -> None:
            on_booked(cost)
            requestlog.attempt_ended(self, cost)

        decision = decide(
            self.booking, outcome, seen, generation_id=self.header_id, on_booked=booked_later, duration=duration
        )
        self.books = decision.now is not None or decision.later is not None
        runtime.deliveries.begin()
        return decision

    def error_for(self, event: ProviderError) -> MiniLLMError:
        """The exception for an error the provider reported in this attempt's body."""
        response = self.response
        assert response is not None
        return self.route.adapter.error_for(
            event,
            streamed=self.streamed,
            status=response.status,
            headers=response.headers,
            endpoint=response.endpoint,
            redactor=self.route.redactor,
        )


class Call:
    """One request, its attempts, and their bookings. See the module docstring."""

    def __init__(
        self,
        routes: Sequence[Route],
        request: ChatRequest,
        *,
        stream: bool,
        meta: Dict[str, Any],
        sink: Optional[SinkFunction],
        budget: Optional[Budget],
        token: Optional[CancellationToken],
        lookup_policy: LookupPolicy,
        owner: object,
        total: Optional[float],
        timeout: Optional[Timeout] = None,
    ) -> None:
        self.lock = threading.RLock()
        self.routes = tuple(routes)
        self.request = request
        self.stream = stream
        self.meta = meta
        self.sink = sink
        self.budget = budget
        self.lookup_policy = lookup_policy
        self.owner = owner
        self.total = total
        #: this call's own connect and read timeouts, over every route's
        self.timeout = timeout
        self.deadline = None if total is None else time.monotonic() + total
        #: the route being tried, and the attempts counted against its policy
        self.route_index = 0
        self.route_attempts = 0
        #: every send so far, billed or not
        self.sends = 0
        self.attempt: Optional[Attempt] = None
        #: the bookings of this call's attempts, in the order booked
        self.costs: List[CostInfo] = []
        #: why the caller or the deadline stopped the call
        self.stopped: Optional[Stop] = None
        #: ends a backoff between attempts early
        self.woken = threading.Event()
        self.ending: Optional[Ending] = None
        #: the finish reason forced by the caller ("cancelled", "paused")
        self.stop_reason: Optional[str] = None
        self.result: Optional[Response] = None
        self.cost: Optional[CostInfo] = None
        #: what made the call fail, to raise again from collect()
        self.error: Optional[MiniLLMError] = None
        #: collect() reads without settling
        self.deferred = False
        self._disconnected = False
        self._http: Dict[int, HTTPRequest] = {}
        #: the provider's prompt counts, by route, for exact budget holds
        self._counts: Dict[int, Optional[int]] = {}
        self._cleanup: List[Callable[[], object]] = []
        self.gen: Optional[Iterator[Chunk]] = None
        #: a forked child's copy of this call is not its to stop or book
        self.pid = runtime.pid
        runtime.open_calls.add(self)
        if self.deadline is not None:
            handle = runtime.timers.call_at(self.deadline, lambda: self.stop(Stop.DEADLINE))
            if handle is not None:
                self._cleanup.append(handle.cancel)
        if token is not None:
            self._cleanup.append(token._subscribe(lambda: self.stop(token.stop)))

    # -- sending --------------------------------------------------------------------

    def open(self) -> None:
        """Send until an attempt is answered with a success status (its body
        unread). Returns without one when the caller stopped the call first.

        :raises MiniLLMError: every route failed (the last error); each
            attempt made is booked.
        """
        try:
            self._answer(None)
        except _Stopped:
            self.end(Ending.EARLY, (self.stopped or Stop.CANCELLED).value)
        except BaseException as exc:
            if isinstance(exc, MiniLLMError):
                self.error = kept(exc)
            # An answer whose body failed (read in full here) was billable.
            self._settle_attempt(Outcome.FAILED)
            self.end(Ending.FAILED, "error")
            self._disconnect(None)
            runtime.open_calls.discard(self)
            raise
        self.gen = drive(self)

    def carry_on(self, error: MiniLLMError) -> bool:
        """The current attempt failed with ``error``, an error the provider
        reported before any output: book the attempt, and send the request
        again under the same retry loop (and fallbacks) as :meth:`open`.

        :returns: True with a new attempt to read; False when the call was
            stopped meanwhile.
        :raises MiniLLMError: no attempt is left (``error`` itself, or the
            last attempt's).
        """
        self._settle_attempt(Outcome.FAILED)
        try:
            self._answer(error)
        except _Stopped:
            return False
        return True

    def _answer(self, failed: Optional[MiniLLMError]) -> None:
        """Send until answered. A whole (JSON) answer is read and parsed here,
        so that an error object inside it raises from ``stream()`` and is
        retried, as an HTTP error would be."""
        self._send_until_answered(failed)
        while True:
            attempt = self.attempt
            assert attempt is not None
            if attempt.streamed:
                return
            events = list(attempt.events)
            attempt.events = iter(events)
            reported = next((event for event in events if type(event) is ProviderError), None)
            if reported is None:
                return
            error = attempt.error_for(reported)
            self._settle_attempt(Outcome.FAILED)
            self._send_until_answered(error)

    def _send_until_answered(self, failed: Optional[MiniLLMError]) -> None:
        last: Optional[MiniLLMError] = None
        while True:
            route = self.routes[self.route_index]
            if last is not None:
                log.warning(
                    "%s failed (%s); falling back to %s", self.routes[0].model, type(last).__name__, route.model
                )
            try:
                if route.unusable is not None:
                    raise route.unusable
                if failed is None:
                    # The first attempt needs no retry machinery: the policy
                    # takes over from its failure, if it fails.
                    try:
                        self._attempt_on(route)
                        return
                    except _FINAL:
                        raise
                    except MiniLLMError as exc:
                        failed = exc
                route.retry.call(
                    functools.partial(self._attempt_on, route),
                    attempts=lambda: self.route_attempts,
                    failed=failed,
                    deadline=self.deadline,
                    on_retry=functools.partial(_retrying, route),
                    wake=self.woken,
                )
                return
            except _FINAL:
                raise
            except MiniLLMError as exc:
                if self.stopped is Stop.DEADLINE or self.route_index + 1 >= len(self.routes):
                    raise
                last, failed = exc, None
                with self.lock:
                    self.route_index += 1
                    self.route_attempts = 0

    def _attempt_on(self, route: Route) -> None:
        """Send to ``route`` once -- twice when the adapter learns from an
        error that the rebuilt request would pass (the second send does not
        count against the retry policy)."""
        learned = False
        while True:
            attempt = self._new_attempt(route, counted=not learned)
            try:
                self._send(attempt)
                return
            except APIError as exc:
                if learned or not route.adapter.learn_from(exc):
                    raise
                learned = True
                self._http.pop(id(route), None)

    def _new_attempt(self, route: Route, *, counted: bool) -> Attempt:
        with self.lock:
            self._check_stopped()
            self.sends += 1
            if counted:
                self.route_attempts += 1
            number = self.sends
        booking_id = new_booking_id()
        hold = None
        if self.budget is not None:
            prompt = self._counted_prompt(route) if self.budget.exact_holds else None
            amount = worst_case(self.request, pricer=route.pricer, model=route.model, prompt_tokens=prompt)
            hold = self.budget.hold(booking_id, amount, self.meta)
        booking = Booking(
            provider=route.provider,
            model=route.name,
            pricer=route.pricer,
            sink=self.sink,
            meta=self.meta,
            attempt=number,
            lookup=route.lookup if route.has_lookup else None,
            lookup_policy=self.lookup_policy,
            owner=self.owner,
            hold=hold,
            id=booking_id,
        )
        attempt = Attempt(number, route, booking, self.request)
        with self.lock:
            self.attempt = attempt
            if self.stopped is not None:
                attempt.exchange.stop(self.stopped)
        return attempt

    def _counted_prompt(self, route: Route) -> Optional[int]:
        """The provider's count of the prompt, for an exact hold: asked once
        per route (a retry sends the same prompt); None for the estimate."""
        key = id(route)
        if key not in self._counts:
            self._counts[key] = counted_for_hold(route, self.request)
        return self._counts[key]

    def _check_stopped(self) -> None:
        if self.stopped is Stop.DEADLINE:
            raise APITimeoutError(f"the total deadline of {self.total:g}s passed")
        if self.stopped is not None:
            raise _Stopped()

    def _send(self, attempt: Attempt) -> None:
        route = attempt.route
        http = self._http.get(id(route))
        if http is None:
            try:
                http = self._http[id(route)] = route.build(self.request, stream=self.stream)
            except BaseException:
                # A request this provider cannot be sent (an option or a part
                # only it refuses) never left: it books nothing.
                self._settle(attempt, Outcome.UNBILLED)
                raise
        attempt.http = http
        attempt.started = time.monotonic()
        try:
            response = route.transport.send(
                route.authorize(http), timeouts=self._timeouts(route), exchange=attempt.exchange
            )
        except Interrupted as stop:
            if stop.reason is Stop.DEADLINE:
                self._settle_sent(attempt, Outcome.UNANSWERED)
                raise APITimeoutError(
                    f"the total deadline of {self.total:g}s passed while waiting for the response"
                ) from None
            self._settle_sent(attempt, Outcome.CUT_SHORT)
            raise _Stopped() from None
        except BaseException:
            # Refused, unreachable, timed out waiting for the headers, reset,
            # or interrupted by Ctrl-C: billable only if the request went out.
            self._settle_sent(attempt, Outcome.UNANSWERED)
            raise
        attempt.response = response
        attempt.status = response.status
        if response.status >= 300:
            self._refuse(attempt, response, self._error_of(route, response))
        attempt.header_id = route.adapter.generation_id(response.headers)
        self._take_body(attempt, response)

    def _settle_sent(self, attempt: Attempt, outcome: Outcome) -> None:
        """Book an attempt that got no response: as ``outcome`` if its request
        went out, else nothing."""
        self._settle(attempt, outcome if attempt.exchange.sent else Outcome.UNBILLED)

    def _refuse(self, attempt: Attempt, response: HTTPResponse, error: MiniLLMError) -> None:
        """The attempt was answered, but not by the provider's API (an error
        status, a page of HTML): it books nothing."""
        response.close()
        attempt.response = None
        self._settle(attempt, Outcome.UNBILLED)
        raise error

    def _error_of(self, route: Route, response: HTTPResponse) -> APIError:
        """The error for a response with a status of 300 or more."""
        body = response.read_error_body()
        if response.status < 400:
            where = response.headers.get("location", "elsewhere")
            return APIError(
                route.redactor.scrub(
                    f"{route.provider} redirected the request to {where}: set base_url to the final address"
                ),
                status_code=response.status,
                provider=route.provider,
                endpoint=response.endpoint,
            )
        return route.adapter.api_error(response.status, response.headers, body, response.endpoint, route.redactor)

    def _take_body(self, attempt: Attempt, response: HTTPResponse) -> None:
        """Choose how to read a success body: a stream, one whole JSON
        answer, or -- for a media type the protocol cannot have sent -- an
        error that books nothing (a proxy or web page answered, not the API)."""
        route = attempt.route
        adapter = route.adapter
        content_type = response.content_type
        if self.stream and (not content_type or content_type in adapter.stream_content_types):
            attempt.streamed = True
            attempt.events = route.pipeline(adapter.stream_events(response.iter_bytes()))
            return
        if "html" not in content_type:
            # A whole answer (or a server that ignored stream=true), perhaps
            # under a media type that does not say JSON.
            attempt.events = self._whole_body(attempt, response, declared=_is_json(content_type))
            return
        body = response.read_error_body()
        wanted = "a stream" if self.stream else "JSON"
        self._refuse(
            attempt,
            response,
            adapter.malformed(
                response.status, body, response.endpoint, route.redactor, f"an HTML page instead of {wanted}"
            ),
        )

    def _whole_body(self, attempt: Attempt, response: HTTPResponse, *, declared: bool) -> Iterator[Event]:
        """Parse a whole answer. A body that is not JSON under a media type
        that never said it was (``text/plain`` from a proxy) came from
        something other than the API: it books nothing. One that said JSON
        came from the API and may have been billed."""
        route = attempt.route
        body = response.read()
        if response.interrupted is not None:
            return  # stopped by the caller (a deadline raised from read())
        if not body.strip():
            raise route.adapter.malformed(response.status, body, response.endpoint, route.redactor, "an empty body")
        try:
            data = json.loads(body)
        except ValueError:
            if declared:
                why = "an HTML page" if b"<html" in body[:512].lower() else "a body that is not valid JSON"
            else:
                wanted = "a stream" if self.stream else "JSON"
                why = f"Content-Type {response.content_type or '(none)'} instead of {wanted}"
                self._settle(attempt, Outcome.UNBILLED)
            raise route.adapter.malformed(response.status, body, response.endpoint, route.redactor, why) from None
        attempt.raw = data
        yield from route.pipeline(route.adapter.parse_body(data))

    def _timeouts(self, route: Route) -> Tuple[float, float]:
        limits = self.timeout or route.timeout
        connect, read = limits.connect, limits.read
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise APITimeoutError(f"the total deadline of {self.total:g}s passed")
            connect, read = min(connect, remaining), min(read, remaining)
        return connect, read

    # -- stopping and ending ------------------------------------------------------

    def stop(self, reason: Stop) -> None:
        """Stop the call from any thread, wherever it is: before a send, in
        a backoff, waiting for the headers, or reading the body. The caller's
        reasons end the call at once; the deadline makes the reader fail."""
        if self.pid != runtime.pid:
            return  # the parent's call, inherited through fork: its sockets are the parent's
        with self.lock:
            if self.stopped is None:
                self.stopped = reason
            attempt = self.attempt
        self.woken.set()
        if reason.by_caller:
            if self.end(Ending.EARLY, reason.value):
                self._disconnect(reason)
        elif attempt is not None:
            attempt.exchange.stop(reason)

    def stop_at_exit(self) -> None:
        """The interpreter is exiting: stop, and book what was spent."""
        self.finish()

    def end(self, ending: Ending, reason: Optional[str] = None) -> bool:
        """Record how the call ended (the first call wins).

        Stopping a call whose provider already said the answer is complete
        (a finish reason and usage, waiting only for ``[DONE]``) is not an
        early end: nothing was cut short.
        """
        with self.lock:
            if self.ending is not None:
                return False
            attempt = self.attempt
            state = attempt.state if attempt is not None else StreamState()
            if ending is Ending.EARLY and state.is_terminal and state.error is None:
                ending, reason = Ending.COMPLETED, None
            self.ending = ending
            self.stop_reason = reason
            self.result = state.to_response(finish_reason=reason, raw=attempt.raw if attempt is not None else None)
            if self.cost is not None:
                self.result.cost = self.cost
            return True

    def fail(self, exc: MiniLLMError) -> None:
        attempt = self.attempt
        if isinstance(exc, StreamError) and attempt is not None:
            exc.partial_text = attempt.state.text
            exc.partial_response = attempt.state.to_response(finish_reason="error")
        self.error = kept(exc)
        self.end(Ending.FAILED, "error")

    def blame_deadline(self, exc: MiniLLMError) -> MiniLLMError:
        """The read timeout is clamped to what is left of the total deadline,
        so a read that timed out after the deadline was ended by the deadline
        (whose own timer may not have fired yet): say so."""
        if isinstance(exc, StreamTimeoutError) and self.deadline is not None and time.monotonic() >= self.deadline:
            return StreamTimeoutError(
                f"the total deadline of {self.total:g}s passed while reading the response", provider=exc.provider
            )
        return exc

    def body_ended(self) -> None:
        """The current attempt's body ran out."""
        if self.ending is not None:
            return
        attempt = self.attempt
        assert attempt is not None
        if not attempt.state.is_terminal:
            raise StreamError(
                f"the response ended before {attempt.route.provider}'s terminal event "
                f"(after {len(attempt.state.text)} characters): the answer is incomplete",
                provider=attempt.route.provider,
            )
        self.end(Ending.COMPLETED)

    def _disconnect(self, interrupt: Optional[Stop], *, drain: bool = False) -> None:
        """Stop reading and let the connection go; cancel the deadline and
        the token's subscription. Runs once; never raises.

        :param drain: the answer is complete: read what is left of the body
            (within a short bound), so the connection can be pooled,
            instead of closing it.
        """
        with self.lock:
            if self._disconnected:
                return
            self._disconnected = True
            steps = list(self._cleanup)
            self._cleanup = []
            attempt = self.attempt
            # The generator is never closed from here: a thread about to
            # resume it would get "generator already executing". Dropping
            # our reference frees it at once when nobody is iterating it (its
            # finally then runs on this thread); a thread that is iterating it
            # sees the call ended, or the interrupted socket, and ends it.
            gen, self.gen = self.gen, None
        if attempt is not None:
            if interrupt is not None:
                steps.append(lambda: attempt.exchange.stop(interrupt))
            response = attempt.response
            if response is not None and drain:
                # At once, not on another thread: the next request of a
                # loop must find the connection back in the pool.
                steps.append(functools.partial(_drain, attempt.events, response))
            elif response is not None:
                steps.append(response.close)
        for step in steps:
            try:
                step()
            except Exception:  # pragma: no cover - letting go must finish
                log.exception("letting go of a call failed")
        del gen

    # -- booking --------------------------------------------------------------------

    def book(self) -> Optional[CostInfo]:
        """Book the last attempt, once; later calls return what it booked.

        :returns: the cost booked now; None when nothing is booked, or the
            cost is being looked up.
        """
        if self.pid != runtime.pid:
            return None  # the parent books its own call
        with self.lock:
            if self.ending is None:
                return None
            attempt = self.attempt
            if attempt is None or attempt.settled:
                decision = None
            else:
                decision = attempt.decide(_OUTCOMES[self.ending], self._on_booked)
                if decision.now is not None:
                    self._on_booked(decision.now)
        runtime.open_calls.discard(self)
        if decision is None:
            return self.cost
        assert attempt is not None
        _carry_out(attempt, decision)
        return decision.now

    def _settle_attempt(self, outcome: Outcome) -> None:
        """Book the current attempt as ``outcome`` and let its response go:
        the call moves on from it."""
        attempt = self.attempt
        if attempt is not None:
            self._settle(attempt, outcome)
            _close_events(attempt.events)
            if attempt.response is not None:
                attempt.response.close()

    def _settle(self, attempt: Attempt, outcome: Outcome) -> None:
        with self.lock:
            if attempt.settled:
                return
            decision = attempt.decide(outcome, lambda cost: self._record(attempt, cost))
            if decision.now is not None:
                self._record(attempt, decision.now)
        _carry_out(attempt, decision)

    def _record(self, attempt: Attempt, cost: CostInfo) -> None:
        with self.lock:
            attempt.cost = cost
            self.costs.append(cost)

    def _on_booked(self, cost: CostInfo) -> None:
        with self.lock:
            attempt = self.attempt
            if attempt is not None:
                attempt.cost = cost
            self.costs.append(cost)
            self.cost = cost
            if self.result is not None:
                self.result.cost = cost

    def reject(self) -> None:
        """Book nothing for the current attempt, ever (earlier attempts of
        the call are booked already), and stop reading.

        :raises InvalidArgumentError: the attempt is booked already: a
            booking is never taken back.
        """
        if self.pid != runtime.pid:
            return
        with self.lock:
            attempt = self.attempt
            decision = None
            if attempt is not None and attempt.books and self.ending is not Ending.REJECTED:
                raise InvalidArgumentError(
                    "reject() came after this stream was booked (reading it to its end, settle() or leaving its "
                    "with block books it), and a booking is never taken back: read with collect(), which books "
                    "nothing, then settle() or reject()"
                )
            if attempt is not None and not attempt.settled:
                decision = attempt.decide(Outcome.REJECTED, self._on_booked)
            first = self.end(Ending.REJECTED, "cancelled")
        runtime.open_calls.discard(self)
        if decision is not None:
            assert attempt is not None
            _carry_out(attempt, decision)
        if first:
            self._disconnect(Stop.CANCELLED)

    def finish(self) -> Optional[CostInfo]:
        """Stop if still running, then book: what ``__exit__``, ``close()``,
        ``settle()``, a finalizer and the exit hook do."""
        self.stop(Stop.CANCELLED)
        return self.book()


def _carry_out(attempt: Attempt, decision: Decision) -> None:
    try:
        decision.carry_out()
    finally:
        runtime.deliveries.end()
        if decision.later is None:  # else the look-up logs it, once it books
            requestlog.attempt_ended(attempt, decision.now)


def drive(call: Call) -> Iterator[Chunk]:
    """The one reader of a call: fold every event, yield the chunks."""
    try:
        while True:
            attempt = call.attempt
            if attempt is None or attempt.response is None:
                break  # stopped before any response: nothing to read
            state = attempt.state
            reported: Optional[ProviderError] = None
            for event in attempt.events:
                accumulate(state, event)
                if type(event) is Chunk:
                    if call.ending is not None:
                        break  # stopped from another thread
                    yield event
                elif state.done:
                    break  # the provider's terminal event: nothing after it is read, shown or booked
                elif state.error is not None:
                    reported = state.error
                    break
            if reported is None:
                call.body_ended()  # completed -- or stopped from another thread
                break
            error = attempt.error_for(reported)
            if state.content_seen or not call.carry_on(error):
                if state.content_seen:
                    raise error
                break  # stopped while waiting to send again
    except Exception as exc:
        if call.ending is not None and call.error is None:
            return  # stopped first (we shut the connection down): not a failure
        attempt = call.attempt
        state = attempt.state if attempt is not None else StreamState()
        if state.is_terminal and state.error is None:
            # The provider had already said the answer was complete (finish
            # reason and usage); losing the connection while waiting for
            # [DONE] takes nothing away from it.
            call.end(Ending.COMPLETED)
            return
        if isinstance(exc, MiniLLMError):
            blamed = call.blame_deadline(exc)
            call.fail(blamed)
            if blamed is exc:
                raise
            raise blamed from None
        # Anything else is a body we could not make sense of: still a
        # StreamError, never a foreign exception.
        provider = attempt.route.provider if attempt is not None else "the provider"
        scrub = attempt.route.redactor.scrub if attempt is not None else str
        error = StreamError(
            scrub(f"the response from {provider} could not be read: {type(exc).__name__}: {exc}"), provider=provider
        )
        call.fail(error)
        raise error from None
    finally:
        call.gen = None
        call.end(Ending.EARLY, "cancelled")  # closed by the caller before the end
        attempt = call.attempt
        if attempt is not None and attempt.state.done and attempt.response is not None:
            # Whatever follows the terminal event (the body's end, usually
            # already here) is read off the caller's thread, within a bound,
            # so that the connection can serve the next request.
            call._disconnect(None, drain=True)
        else:
            call._disconnect(None)
            if attempt is not None:
                _close_events(attempt.events)
        if not call.deferred:
            call.book()


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _retrying(route: Route, attempt: int, exc: BaseException, delay: float) -> None:
    status = getattr(exc, "status_code", None)
    if isinstance(exc, StreamError):
        why = f"an error in the response body: {excerpt(str(exc), 120)}"
    elif status:
        why = f"HTTP {status}"
    else:
        why = type(exc).__name__
    log.warning(
        "retrying %s request (attempt %d of %d failed: %s) in %.2fs",
        route.provider,
        attempt,
        route.retry.max_attempts,
        why,
        delay,
    )
    if route.on_retry is not None:
        route.on_retry(attempt, exc, delay)


#: How long the rest of a complete body (after ``[DONE]``: the chunked
#: body's last, empty chunk) may take to arrive before its connection is
#: closed rather than pooled. Real servers send it with the terminal event;
#: one that keeps talking costs the caller no more than this.
_DRAIN_SECONDS = 0.05


def _drain(events: Iterator[Event], response: HTTPResponse) -> None:
    """Read what follows a terminal event, unseen, then let the response go."""
    try:
        response.bound_silence(_DRAIN_SECONDS)
        for _ in events:
            pass
    except Exception:
        response.interrupt(Stop.CANCELLED)  # not worth pooling: dropped
    finally:
        _close_events(events)
        response.close()


def _close_events(events: Iterator[Event]) -> None:
    close = getattr(events, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # pragma: no cover - the events are being dropped anyway
            log.debug("closing a stream's events failed", exc_info=True)
