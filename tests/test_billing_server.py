"""The invoice-keeping server: each protocol's answers carry the usage the
provider reports, and each ending books the line the provider would bill.

Driven with plain ``requests`` and sockets, never the minillm client."""

from __future__ import annotations

import json
import re
import socket
import threading
from decimal import Decimal
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import pytest
import requests
import urllib3

from minillm.testing import PROTOCOLS, Billing, BillingServer, Invoice, Plan, Reply

PRICES = ("3", "15")  # USD per million tokens in, out


@pytest.fixture
def server() -> Iterator[BillingServer]:
    with BillingServer() as running:
        yield running


def billed(server: BillingServer, protocol: str, **kwargs: Any) -> Invoice:
    return server.bill(Billing(protocol, *PRICES, **kwargs))


def usd(prompt: int, completion: int) -> Decimal:
    return (Decimal(prompt) * 3 + Decimal(completion) * 15) / 1_000_000


# -- what a client of each protocol sends ----------------------------------------------------------


def path_for(protocol: str, stream: bool) -> str:
    if protocol == "gemini":
        return "/models/gem-test:streamGenerateContent?alt=sse" if stream else "/models/gem-test:generateContent"
    return {
        "openai_chat": "/chat/completions",
        "openrouter": "/chat/completions",
        "openai_responses": "/responses",
        "anthropic": "/v1/messages",
        "ollama": "/api/chat",
    }[protocol]


def body_for(protocol: str, stream: bool) -> Dict[str, Any]:
    body: Dict[str, Any] = {"model": "wire-model", "stream": stream}
    if protocol in ("openai_chat", "openrouter") and stream:
        body["stream_options"] = {"include_usage": True}
    if protocol == "gemini":
        del body["model"], body["stream"]
    return body


def post(
    server: BillingServer,
    protocol: str,
    stream: bool,
    *,
    tag: Optional[str] = None,
    timeout: Union[float, Tuple[float, float]] = 5,
) -> requests.Response:
    headers = {"X-Test-Tag": tag} if tag else {}
    url = server.url + path_for(protocol, stream)
    return requests.post(url, json=body_for(protocol, stream), headers=headers, stream=stream, timeout=timeout)


def raw_request(server: BillingServer, path: str, tag: str, body: Optional[Dict[str, Any]] = None) -> socket.socket:
    """A request sent on a bare socket, which the test closes to leave."""
    payload = json.dumps(body or {}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Test-Tag: {tag}\r\nContent-Length: {len(payload)}\r\n\r\n"
    sock.sendall(head.encode() + payload)
    return sock


# -- reading what comes back ---------------------------------------------------------------------------


def sse_events(raw: bytes) -> List[Tuple[Optional[str], str]]:
    """(event name, data) of each SSE event; comment-only blocks dispatch nothing."""
    events = []
    for block in raw.replace(b"\r\n", b"\n").decode("utf-8").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        if data:
            events.append((name, "\n".join(data)))
    return events


def loads(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def objects(protocol: str, raw: bytes) -> List[Any]:
    if protocol == "ollama":
        return [loads(line) for line in raw.decode("utf-8").splitlines() if line]
    return [loads(data) for _, data in sse_events(raw) if data != "[DONE]"]


class Answer:
    """What a client reads from one answer: text, the usage reported last and
    whether the protocol's terminal signal arrived."""

    def __init__(self, text: str, prompt: int, completion: int, done: bool) -> None:
        self.text, self.prompt, self.completion, self.done = text, prompt, completion, done


def read_stream(protocol: str, raw: bytes) -> Answer:
    objs = objects(protocol, raw)
    if protocol in ("openai_chat", "openrouter"):
        text = "".join(o["choices"][0]["delta"].get("content") or "" for o in objs if o["choices"])
        usage = [o["usage"] for o in objs if o.get("usage")][-1]
        done = sse_events(raw)[-1][1] == "[DONE]"
        return Answer(text, usage["prompt_tokens"], usage["completion_tokens"], done)
    if protocol == "anthropic":
        text = "".join(o["delta"]["text"] for o in objs if o["type"] == "content_block_delta")
        start = objs[0]["message"]["usage"]
        assert start["output_tokens"] == 1  # Anthropic's placeholder, not a count
        final = [o["usage"] for o in objs if o["type"] == "message_delta"][-1]
        return Answer(text, start["input_tokens"], final["output_tokens"], objs[-1]["type"] == "message_stop")
    if protocol == "gemini":
        parts = [part for o in objs for part in o["candidates"][0]["content"]["parts"]]
        counts = [o["usageMetadata"]["candidatesTokenCount"] for o in objs]
        assert counts == sorted(counts)  # a running count: snapshots, not increments
        usage = objs[-1]["usageMetadata"]
        assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
        done = objs[-1]["candidates"][0].get("finishReason") == "STOP"
        return Answer("".join(p["text"] for p in parts), usage["promptTokenCount"], counts[-1], done)
    if protocol == "ollama":
        last = objs[-1]
        text = "".join(o["message"]["content"] for o in objs)
        return Answer(text, last["prompt_eval_count"], last["eval_count"], last["done"] is True)
    assert protocol == "openai_responses"
    assert objs[0]["type"] == "response.created"
    text = "".join(o["delta"] for o in objs if o["type"] == "response.output_text.delta")
    usage = objs[-1]["response"]["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    return Answer(text, usage["input_tokens"], usage["output_tokens"], objs[-1]["type"] == "response.completed")


def read_whole(protocol: str, data: Dict[str, Any]) -> Answer:
    if protocol in ("openai_chat", "openrouter"):
        usage = data["usage"]
        choice = data["choices"][0]
        return Answer(choice["message"]["content"], usage["prompt_tokens"], usage["completion_tokens"], True)
    if protocol == "anthropic":
        usage = data["usage"]
        return Answer(data["content"][0]["text"], usage["input_tokens"], usage["output_tokens"], True)
    if protocol == "gemini":
        usage = data["usageMetadata"]
        text = data["candidates"][0]["content"]["parts"][0]["text"]
        return Answer(text, usage["promptTokenCount"], usage["candidatesTokenCount"], True)
    if protocol == "ollama":
        return Answer(data["message"]["content"], data["prompt_eval_count"], data["eval_count"], data["done"])
    assert data["status"] == "completed"
    usage = data["usage"]
    return Answer(data["output"][0]["content"][0]["text"], usage["input_tokens"], usage["output_tokens"], True)


TOKEN = re.compile(rb'"t\d+ "')


class Reading:
    """A streamed response read chunk by chunk; :meth:`leave` disconnects."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        connection = response.raw.connection
        assert connection is not None and connection.sock is not None
        self.sock = connection.sock
        self.chunks = response.raw.read_chunked()
        self.raw = b""

    def tokens(self, count: int) -> int:
        """Read until ``count`` more token chunks have arrived; the tokens read so far."""
        wanted = len(TOKEN.findall(self.raw)) + count
        while len(TOKEN.findall(self.raw)) < wanted:
            self.raw += next(self.chunks)
        return wanted

    def rest(self) -> bytes:
        for chunk in self.chunks:
            self.raw += chunk
        return self.raw

    def leave(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.response.close()


# -- whole answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_complete_stream_carries_the_providers_usage_and_terminal_event(server: BillingServer, protocol: str) -> None:
    invoice = billed(server, protocol)
    server.plan(Plan(prompt_tokens=12, tokens=7))
    with post(server, protocol, stream=True) as response:
        assert response.status_code == 200
        answer = read_stream(protocol, Reading(response).rest())
    assert (answer.text, answer.prompt, answer.completion, answer.done) == ("t0 t1 t2 t3 t4 t5 t6 ", 12, 7, True)
    assert invoice.wait_final(5, count=1)
    [line] = invoice.lines
    assert (line.prompt_tokens, line.completion_tokens, line.usd) == (12, 7, usd(12, 7))
    assert (line.protocol, line.ending, line.streamed, line.final, line.disconnected) == (
        protocol,
        "complete",
        True,
        True,
        False,
    )
    assert line.model == ("gem-test" if protocol == "gemini" else "wire-model")
    assert line.id != "" and line.arrival == 1 and line.tag is None


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_complete_whole_answer_carries_the_providers_usage(server: BillingServer, protocol: str) -> None:
    invoice = billed(server, protocol, model="billed-model")
    server.plan(Plan(prompt_tokens=4, tokens=3))
    response = post(server, protocol, stream=False)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    answer = read_whole(protocol, response.json())
    assert (answer.text, answer.prompt, answer.completion, answer.done) == ("t0 t1 t2 ", 4, 3, True)
    assert invoice.wait_final(5, count=1)
    [line] = invoice.lines
    assert (line.completion_tokens, line.usd, line.streamed, line.model) == (3, usd(4, 3), False, "billed-model")


def test_the_ids_in_answers_are_the_line_ids_unique_per_request(server: BillingServer) -> None:
    invoice = billed(server, "anthropic")
    server.plan(Plan(), Plan())
    first = post(server, "anthropic", stream=False).json()["id"]
    with post(server, "anthropic", stream=True) as response:
        second = objects("anthropic", Reading(response).rest())[0]["message"]["id"]
    assert invoice.wait_final(5, count=2)
    assert [line.id for line in invoice.lines] == [first, second] and first != second
    assert invoice.line(second).arrival == 2
    with pytest.raises(KeyError):
        invoice.line("msg_nope")


def test_openai_chat_sends_usage_only_when_the_stream_asks_for_it(server: BillingServer) -> None:
    billed(server, "openai_chat")
    url = server.url + "/chat/completions"
    with requests.post(url, json={"model": "m", "stream": True}, stream=True, timeout=5) as response:
        objs = objects("openai_chat", Reading(response).rest())
    assert all(obj["usage"] is None for obj in objs) and objs[-1]["choices"][0]["finish_reason"] == "stop"
    with post(server, "openai_chat", stream=True) as response:
        objs = objects("openai_chat", Reading(response).rest())
    assert objs[-1]["choices"] == [] and objs[-1]["usage"]["completion_tokens"] == 5


def test_openrouter_reports_native_cost_and_the_generation_id_header(server: BillingServer) -> None:
    invoice = server.bill(Billing("openrouter", "0.1", "1.23456789"))
    server.plan(Plan(prompt_tokens=3, tokens=7), Plan(prompt_tokens=3, tokens=7))
    with post(server, "openrouter", stream=True) as response:
        generation_id = response.headers["X-Generation-Id"]
        raw = Reading(response).rest()
    assert raw.startswith(b": OPENROUTER PROCESSING\n\n")
    usage = [obj["usage"] for obj in objects("openrouter", raw) if obj.get("usage")][-1]
    whole = post(server, "openrouter", stream=False)
    assert invoice.wait_final(5, count=2)
    streamed_line, whole_line = invoice.lines
    exact = Decimal("0.0000003") + Decimal("0.00000864197523")
    assert generation_id == streamed_line.id and whole.headers["X-Generation-Id"] == whole_line.id
    assert usage["cost"] == exact == streamed_line.usd and usage["is_byok"] is False
    # The corpus's 2026 shape: upstream cost filled on a non-BYOK call, equal to the cost.
    assert usage["cost_details"]["upstream_inference_cost"] == exact
    assert b'"cost":0.00000894197523' in raw  # exact digits on the wire, no float rounding
    assert loads(whole.text)["usage"]["cost"] == exact == whole_line.usd
    assert invoice.total() == 2 * exact


def test_ollama_streams_unless_the_body_says_stream_false(server: BillingServer) -> None:
    invoice = billed(server, "ollama")
    with requests.post(server.url + "/api/chat", json={"model": "m"}, stream=True, timeout=5) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson"
        assert read_stream("ollama", Reading(response).rest()).done
    assert invoice.wait_final(5, count=1) and invoice.lines[0].streamed


# -- endings: hang, drop, error, malformed, status, late, drip ------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_hung_stream_is_final_only_once_the_client_leaves_and_bills_what_was_written(
    server: BillingServer, protocol: str
) -> None:
    invoice = billed(server, protocol)
    server.plan(Plan(tokens=50, ending="hang", after=3))
    reading = Reading(post(server, protocol, stream=True))
    assert reading.tokens(3) == 3
    [line] = invoice.lines
    assert not line.final and line.completion_tokens == 3  # the count so far
    assert not invoice.wait_final(0)
    reading.leave()
    assert invoice.wait_final(5)
    [line] = invoice.lines
    assert (line.completion_tokens, line.usd, line.final, line.disconnected) == (3, usd(10, 3), True, True)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_dropped_stream_ends_without_its_terminal_event_and_bills_the_tokens_sent(
    server: BillingServer, protocol: str
) -> None:
    invoice = billed(server, protocol)
    server.plan(Plan(tokens=9, ending="drop", after=2))
    reading = Reading(post(server, protocol, stream=True))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        reading.rest()
    reading.response.close()
    assert len(TOKEN.findall(reading.raw)) == 2
    assert invoice.wait_final(5, count=1)
    [line] = invoice.lines
    assert (line.completion_tokens, line.usd, line.ending) == (2, usd(10, 2), "drop")


def in_band_error(protocol: str, raw: bytes) -> Any:
    """The error a stream ended with, checked to be in the provider's shape."""
    if protocol == "ollama":
        last = objects(protocol, raw)[-1]
        assert isinstance(last["error"], str)  # Ollama's errors are plain strings
        return {"message": last["error"]}
    events = sse_events(raw)
    if protocol == "openrouter":  # an ordinary chunk with an error, its usage and cost; then [DONE]
        assert events[-1][1] == "[DONE]"
        chunk = loads(events[-2][1])
        assert chunk["choices"][0]["finish_reason"] == "error" and chunk["usage"]["completion_tokens"] == 2
        assert chunk["usage"]["cost"] == usd(10, 2)
        return chunk["error"]
    name, data = events[-1]
    error = loads(data)
    if protocol == "anthropic":
        assert name == "error" and error["type"] == "error"
        assert error["error"] == {"details": None, "type": "overloaded_error", "message": "Overloaded"}
    elif protocol == "openai_responses":  # an error event, then response.failed
        assert name == "response.failed" and error["response"]["status"] == "failed"
        assert sse_events(raw)[-2][0] == "error"
        return error["response"]["error"]
    elif protocol == "gemini":
        assert raw.endswith(b"\r\n\r\n") and error["error"]["status"] == "INTERNAL"
    else:
        assert name is None and error["error"]["type"] == "server_error"
    return error["error"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_in_band_error_after_k_tokens_has_the_providers_shape_and_bills_k(
    server: BillingServer, protocol: str
) -> None:
    invoice = billed(server, protocol)
    server.plan(Plan(tokens=9, ending="error", after=2))
    with post(server, protocol, stream=True) as response:
        assert response.status_code == 200
        raw = Reading(response).rest()
    assert len(TOKEN.findall(raw)) == 2
    assert in_band_error(protocol, raw)["message"]
    assert invoice.wait_final(5, count=1)
    assert [(line.completion_tokens, line.usd) for line in invoice.lines] == [(2, usd(10, 2))]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_error_in_a_whole_answer_is_a_200_body_that_carries_it(server: BillingServer, protocol: str) -> None:
    invoice = billed(server, protocol)
    server.plan(Plan(tokens=9, ending="error", after=4))
    response = post(server, protocol, stream=False)
    assert response.status_code == 200
    data = loads(response.text)
    assert data["error"]
    if protocol == "openrouter":
        assert data["usage"]["completion_tokens"] == 4 and data["usage"]["cost"] == usd(10, 4)
    assert invoice.wait_final(5, count=1)
    assert [(line.completion_tokens, line.ending) for line in invoice.lines] == [(4, "error")]


def garbled_event(protocol: str, raw: bytes) -> Tuple[List[str], str]:
    """The payloads a stream carried before its last event, and that last
    one, split by the protocol's framing alone."""
    if protocol == "ollama":
        assert raw.endswith(b"\n")
        *parsed, last = raw.decode("utf-8").splitlines()
        return parsed, last
    events = sse_events(raw)
    name, last = events[-1]
    assert name == events[-2][0]  # framed as the token event it was cut from
    return [data for _, data in events[:-1]], last


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_malformed_event_after_k_tokens_keeps_its_framing_ends_the_body_and_bills_k(
    server: BillingServer, protocol: str
) -> None:
    invoice = billed(server, protocol)
    server.plan(Plan(tokens=9, ending="malformed", after=2))
    with post(server, protocol, stream=True) as response:
        assert response.status_code == 200
        generation_id = response.headers.get("X-Generation-Id")
        raw = Reading(response).rest()  # the body ends as it should: only the event is broken
    parsed, garbled = garbled_event(protocol, raw)
    assert len(TOKEN.findall("".join(parsed).encode())) == 2
    for payload in parsed:
        loads(payload)
    assert garbled.startswith("{")
    with pytest.raises(ValueError):
        json.loads(garbled)
    assert invoice.wait_final(5, count=1)
    [line] = invoice.lines
    assert (line.completion_tokens, line.usd, line.ending, line.disconnected) == (2, usd(10, 2), "malformed", False)
    if protocol == "openrouter":
        record = loads(requests.get(server.url + "/generation", params={"id": generation_id}, timeout=5).text)["data"]
        assert (record["finish_reason"], record["cancelled"], record["total_cost"]) == ("error", False, line.usd)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_malformed_whole_answer_is_json_cut_off_half_way_and_bills_k(server: BillingServer, protocol: str) -> None:
    invoice = billed(server, protocol)
    server.plan(Plan(tokens=9, ending="malformed", after=4))
    response = post(server, protocol, stream=False)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert response.text.startswith("{")
    with pytest.raises(ValueError):
        json.loads(response.text)
    assert invoice.wait_final(5, count=1)
    assert [(line.completion_tokens, line.usd, line.ending) for line in invoice.lines] == [(4, usd(10, 4), "malformed")]


def test_a_malformed_event_with_no_token_left_to_cut_garbles_the_last_again(server: BillingServer) -> None:
    invoice = billed(server, "gemini")  # whose last token is its terminal chunk
    server.plan(Plan(tokens=2, ending="malformed", after=2))
    with post(server, "gemini", stream=True) as response:
        parsed, garbled = garbled_event("gemini", Reading(response).rest())
    assert len(TOKEN.findall("".join(parsed).encode())) == 2
    with pytest.raises(ValueError):
        json.loads(garbled)
    assert invoice.wait_final(5, count=1) and invoice.lines[0].completion_tokens == 2


STATUS_BODIES = {
    "openai_chat": lambda body, status: body["error"]["type"] == ("requests" if status == 429 else "server_error"),
    "openai_responses": lambda body, status: "type" in body["error"] and "message" in body["error"],
    "openrouter": lambda body, status: body["error"]["code"] == status,
    "anthropic": lambda body, status: (
        body["type"] == "error"
        and body["error"]["type"] == {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}[status]
    ),
    "gemini": lambda body, status: body["error"]["code"] == status and body["error"]["status"],
    "ollama": lambda body, status: isinstance(body["error"], str),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_error_status_bills_nothing(server: BillingServer, protocol: str) -> None:
    invoice = billed(server, protocol)
    server.plan(*(Plan(ending="status", status=status) for status in (429, 500, 529)), Plan(tokens=1))
    for status in (429, 500, 529):
        response = post(server, protocol, stream=True)
        assert response.status_code == status and STATUS_BODIES[protocol](response.json(), status)
        response.close()
    with post(server, protocol, stream=True) as response:
        Reading(response).rest()
    assert invoice.wait_final(5, count=1)
    assert [(line.arrival, line.completion_tokens) for line in invoice.lines] == [(1, 1)]


@pytest.mark.parametrize("protocol", ["anthropic", "ollama"])
@pytest.mark.parametrize("stream", [True, False])
def test_a_late_answer_is_billed_in_full_though_the_client_left(
    server: BillingServer, protocol: str, stream: bool
) -> None:
    invoice = billed(server, protocol)
    server.plan(Plan(tokens=6, ending="late", delay=0.1))
    body = body_for(protocol, stream)
    gone = raw_request(server, path_for(protocol, stream), tag="late", body=body)
    assert invoice.wait_for_lines(1)
    gone.close()  # (had it stayed, the outcome would be the same: a late answer is billed in full)
    assert invoice.wait_final(5)
    [line] = invoice.lines
    assert (line.completion_tokens, line.usd, line.ending, line.streamed) == (6, usd(10, 6), "late", stream)


def test_a_late_answer_outlasts_a_client_timeout(server: BillingServer) -> None:
    invoice = billed(server, "openai_responses")
    server.plan(Plan(tokens=6, ending="late", delay=0.5))
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(server, "openai_responses", stream=True, timeout=(5, 0.05))
    assert invoice.wait_final(5, count=1)
    assert [(line.completion_tokens, line.usd) for line in invoice.lines] == [(6, usd(10, 6))]


def test_a_late_answer_does_not_keep_a_stopping_server_waiting() -> None:
    server = BillingServer().start()
    invoice = billed(server, "openai_chat")
    server.plan(Plan(ending="late", delay=60))
    errors: List[BaseException] = []

    def call() -> None:
        try:
            post(server, "openai_chat", stream=False, timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert invoice.wait_for_lines(1, timeout=5)
    server.stop()
    assert invoice.wait_final(2)  # not 60 s
    caller.join(5)
    assert not caller.is_alive() and len(errors) == 1
    assert invoice.lines[0].completion_tokens == 5


@pytest.mark.parametrize("protocol", ["openrouter", "gemini", "ollama"])
def test_a_drip_bills_what_was_written_before_the_client_left(server: BillingServer, protocol: str) -> None:
    invoice = billed(server, protocol)
    server.plan(Plan(tokens=200, ending="drip", delay=0.01, after=1))
    reading = Reading(post(server, protocol, stream=True))
    received = reading.tokens(3)
    reading.leave()
    assert invoice.wait_final(5)
    [line] = invoice.lines
    assert received <= line.completion_tokens < 200 and line.disconnected
    assert line.usd == usd(10, line.completion_tokens)


def test_a_drip_to_a_patient_client_is_a_complete_answer(server: BillingServer) -> None:
    invoice = billed(server, "anthropic")
    server.plan(Plan(tokens=3, ending="drip", delay=0.01), Plan(tokens=3, ending="drip", delay=0.01))
    with post(server, "anthropic", stream=True) as response:
        assert read_stream("anthropic", Reading(response).rest()).completion == 3
    assert read_whole("anthropic", post(server, "anthropic", stream=False).json()).completion == 3
    assert invoice.wait_final(5, count=2)
    assert [line.completion_tokens for line in invoice.lines] == [3, 3]


def test_whole_answers_that_hang_drop_or_drip_bill_what_was_generated(server: BillingServer) -> None:
    invoice = billed(server, "gemini")
    server.plan(
        Plan(tokens=8, ending="hang", after=2, tag="hang"),
        Plan(tokens=8, ending="drop", after=3, tag="drop"),
        Plan(tokens=400, ending="drip", delay=0.01, after=1, tag="drip"),
    )
    path = path_for("gemini", stream=False)
    hung = raw_request(server, path, "hang")
    assert invoice.wait_for_lines(1)
    assert not invoice.wait_final(0)  # held before any headers, until the client leaves
    hung.close()
    assert invoice.wait_final(5)
    with pytest.raises(requests.ConnectionError):
        requests.post(server.url + path, json={}, headers={"X-Test-Tag": "drop"}, timeout=5)
    dripping = raw_request(server, path, "drip")
    assert invoice.wait_for_lines(3)
    dripping.close()
    assert invoice.wait_final(5)
    hang, drop, drip = invoice.lines
    assert (hang.completion_tokens, hang.disconnected) == (2, True)
    assert (drop.completion_tokens, drop.tag) == (3, "drop")
    assert 1 <= drip.completion_tokens < 400 and drip.disconnected


# -- OpenRouter's generation look-up ---------------------------------------------------------------


def test_a_generation_is_not_found_until_its_line_is_final_then_has_the_exact_cost(server: BillingServer) -> None:
    invoice = server.bill(Billing("openrouter", "0.15", "0.6"))
    server.plan(Plan(prompt_tokens=11, tokens=30, ending="hang", after=4))
    reading = Reading(post(server, "openrouter", stream=True))
    generation_id = reading.response.headers["X-Generation-Id"]
    reading.tokens(4)
    lookup = server.url + "/generation?id=" + generation_id
    missing = requests.get(lookup, timeout=5)
    assert missing.status_code == 404
    assert missing.json() == {"error": {"message": f"Generation {generation_id} not found", "code": 404}}
    reading.leave()
    assert invoice.wait_final(5)
    found = requests.get(lookup, timeout=5)
    assert found.status_code == 200
    record = loads(found.text)["data"]
    assert record["total_cost"] == record["usage"] == Decimal("0.00000405") == invoice.lines[0].usd
    assert (record["tokens_prompt"], record["tokens_completion"]) == (11, 4)
    assert (record["native_tokens_prompt"], record["native_tokens_completion"]) == (11, 4)
    assert (record["id"], record["is_byok"], record["streamed"], record["cancelled"]) == (
        generation_id,
        False,
        True,
        True,
    )
    assert requests.get(server.url + "/generation?id=gen-unknown", timeout=5).status_code == 404


def test_the_paths_may_sit_below_a_prefix_such_as_openrouters_api_v1(server: BillingServer) -> None:
    invoice = billed(server, "openrouter")
    base = server.url + "/api/v1"
    whole = requests.post(base + "/chat/completions", json={"model": "m"}, timeout=5)
    assert whole.status_code == 200 and invoice.wait_final(5, count=1)
    assert requests.get(base + "/generation", params={"id": whole.json()["id"]}, timeout=5).status_code == 200


# -- plans, tags, totals, many clients --------------------------------------------------------------


def test_tagged_plans_go_to_requests_with_that_tag_whatever_the_order(server: BillingServer) -> None:
    invoice = billed(server, "openai_chat")
    server.plan(Plan(tokens=1, tag="a"), Plan(tokens=2), Plan(tokens=3, tag="b"))
    for tag in ("b", None, "a"):
        post(server, "openai_chat", stream=False, tag=tag).close()
    assert invoice.wait_final(5, count=3)
    assert [(line.tag, line.completion_tokens) for line in invoice.lines] == [("b", 3), (None, 2), ("a", 1)]
    assert invoice.by_tag() == {"b": usd(10, 3), None: usd(10, 2), "a": usd(10, 1)}
    assert [line.completion_tokens for line in invoice.lines_for("a")] == [1]
    assert invoice.total() == usd(30, 6)


def test_a_request_no_plan_fits_gets_the_default_or_an_unbilled_500(server: BillingServer) -> None:
    invoice = server.bill(Billing("ollama", 1, Decimal("2"), default=Plan(tokens=2)))
    assert read_whole("ollama", post(server, "ollama", stream=False).json()).completion == 2
    strict = server.bill(Billing("anthropic", "1", "2", default=None))
    refused = post(server, "anthropic", stream=False)
    assert refused.status_code == 500 and refused.json()["error"]["type"] == "api_error"
    assert invoice.wait_final(5, count=1) and strict.lines == []


def test_other_paths_are_scripted_as_on_any_scripted_server(server: BillingServer) -> None:
    billed(server, "openai_chat")
    server.reply(Reply.text("models"), path="/models")
    assert requests.get(server.url + "/models", timeout=5).text == "models"
    assert requests.post(server.url + "/v1/messages", json={}, timeout=5).status_code == 404  # not billed
    assert requests.post(server.url + "/chat/completions", data=b"{not json", timeout=5).status_code == 400
    assert server.wait_for_requests(3)


def test_many_concurrent_requests_get_a_line_each(server: BillingServer) -> None:
    invoice = billed(server, "openrouter")
    server.plan(*(Plan(tokens=n % 5, prompt_tokens=n) for n in range(24)))
    url = server.url + "/chat/completions"

    def client(stream: bool) -> None:
        # Six keep-alive connections (the listening socket's backlog is small).
        with requests.Session() as session:
            for _ in range(4):
                with session.post(url, json={"stream": stream}, stream=stream, timeout=5) as response:
                    if stream:
                        Reading(response).rest()

    threads = [threading.Thread(target=client, args=(n % 2 == 0,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert invoice.wait_final(5, count=24)
    lines = invoice.lines
    assert sorted(line.arrival for line in lines) == list(range(1, 25)) and len({line.id for line in lines}) == 24
    assert sorted(line.prompt_tokens for line in lines) == list(range(24))
    assert invoice.total() == sum((usd(n, n % 5) for n in range(24)), Decimal(0))


def test_a_protocol_is_billed_once_per_path(server: BillingServer) -> None:
    billed(server, "openai_chat")
    with pytest.raises(ValueError):
        billed(server, "openrouter")  # the same /chat/completions
    with pytest.raises(ValueError):
        billed(server, "openai_chat")
    billed(server, "anthropic")


def test_plans_and_prices_are_checked() -> None:
    with pytest.raises(ValueError):
        Plan(tokens=2, after=3)
    with pytest.raises(ValueError):
        Plan(ending="status", status=200)
    with pytest.raises(ValueError):
        Plan(ending="explode")
    with pytest.raises(TypeError):
        Billing("anthropic", 0.1, "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Billing("bedrock", "1", "1")
    assert Billing("gemini", "0.075", 3).usd(1_000_000, 1) == Decimal("0.075003")
