"""``minillm serve``: an engine behind an OpenAI-compatible HTTP server,
checked with the official ``openai`` client and with minillm's own."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from typing import Any, Dict, Iterator, List, Tuple

import openai
import pytest

import minillm
from minillm.engines import (
    EchoEngine,
    Engine,
    EngineConfig,
    Fail,
    GenerationContext,
    GenerationRequest,
    Output,
    ScriptedEngine,
    saturating_usage,
)
from minillm.serve import EngineServer
from minillm.testing import Gate

from .conftest import finishes

HI = [{"role": "user", "content": "hello there world"}]


@pytest.fixture
def echo() -> Iterator[EngineServer]:
    with EngineServer(EchoEngine(strict=True)) as server:
        yield server


@pytest.fixture
def scripted() -> Iterator[Tuple[EngineServer, ScriptedEngine]]:
    engine = ScriptedEngine(strict=True)
    with EngineServer(engine) as server:
        yield server, engine


_official: List[openai.OpenAI] = []


def official(server: EngineServer) -> openai.OpenAI:
    """The official client for ``server`` (closed after the test)."""
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="not-needed", max_retries=0)
    _official.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_official_clients() -> Iterator[None]:
    yield
    while _official:
        _official.pop().close()


def raw(server: EngineServer, method: str, path: str, body: Any = None, **headers: str) -> Tuple[int, Dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers={"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


# -- the official client ---------------------------------------------------------------------------


def test_the_openai_client_gets_a_whole_answer_with_usage(echo: EngineServer) -> None:
    completion = official(echo).chat.completions.create(model="echo", messages=HI)  # type: ignore[arg-type]
    choice = completion.choices[0]
    assert (choice.message.content, choice.message.role, choice.finish_reason) == (
        "hello there world",
        "assistant",
        "stop",
    )
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 3)
    assert completion.usage.total_tokens == 7


def test_the_openai_client_streams_with_usage_in_a_final_chunk(echo: EngineServer) -> None:
    chunks = list(
        official(echo).chat.completions.create(
            model="echo",
            messages=HI,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=2,
        )
    )
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert texts == ["hello ", "there "]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (4, 2)
    assert len({c.id for c in chunks}) == 1


def test_without_include_usage_no_usage_chunk_is_sent(echo: EngineServer) -> None:
    chunks = list(official(echo).chat.completions.create(model="echo", messages=HI, stream=True))  # type: ignore[arg-type]
    assert all(c.usage is None for c in chunks) and chunks[-1].choices[0].finish_reason == "stop"


def test_the_models_are_listed_and_retrieved(echo: EngineServer) -> None:
    client = official(echo)
    assert [m.id for m in client.models.list()] == ["echo"]
    assert client.models.retrieve("echo").owned_by == "minillm"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_an_unknown_model_is_a_404_naming_the_served_one(echo: EngineServer) -> None:
    with pytest.raises(openai.NotFoundError, match="this server serves 'echo'"):
        official(echo).chat.completions.create(model="gpt-4o", messages=HI)  # type: ignore[arg-type]


def test_a_prompt_too_long_is_a_400_that_minillm_reads_as_a_context_overflow() -> None:
    with EngineServer(EchoEngine(context_length=3)) as server:
        with pytest.raises(openai.BadRequestError) as caught:
            official(server).chat.completions.create(model="echo", messages=HI)  # type: ignore[arg-type]
        assert caught.value.code == "context_length_exceeded"
        client = minillm.Client("openai/echo", base_url=server.url + "/v1")
        with pytest.raises(minillm.ContextOverflowError) as overflow:
            client.complete("hello there world")
        assert (overflow.value.requested_tokens, overflow.value.limit_tokens) == (4, 3)
        client.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "complaint"),
    [
        ("POST", "/v1/chat/completions", b"{not json", 400, "not valid JSON"),
        ("POST", "/v1/chat/completions", {"model": "echo"}, 400, "messages must be a non-empty list"),
        ("POST", "/v1/chat/completions", {"model": "echo", "messages": HI, "n": 2}, 400, "n=1"),
        ("POST", "/v1/chat/completions", {"model": "echo", "messages": HI, "max_tokens": 0}, 400, "max_tokens"),
        ("POST", "/v1/chat/completions", {"model": "echo", "messages": HI, "temperature": 9}, 400, "temperature"),
        ("POST", "/v1/chat/completions", {"model": "echo", "messages": HI, "stop": 3}, 400, "stop"),
        ("POST", "/v1/chat/completions", {"model": "echo", "messages": HI, "tools": [{}]}, 400, "tools"),
        ("GET", "/v1/chat/completions", None, 405, "use POST"),
        ("GET", "/v1/embeddings", None, 404, "nothing at /embeddings"),
    ],
)
def test_bad_requests_get_openai_shaped_errors(
    echo: EngineServer, method: str, path: str, body: Any, status: int, complaint: str
) -> None:
    got, data = raw(echo, method, path, body)
    assert got == status and complaint in data["error"]["message"]
    assert set(data["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("top_p", 0.5),
        ("frequency_penalty", 0.2),
        ("presence_penalty", 1),
        ("logit_bias", {"50256": -100}),
        ("response_format", {"type": "json_object"}),
        ("modalities", ["text", "audio"]),
        ("reasoning_effort", "high"),
        ("best_of", 3),  # not an OpenAI chat field at all
    ],
)
def test_a_field_the_engine_cannot_honour_is_refused_with_a_400_naming_it(
    echo: EngineServer, field: str, value: Any
) -> None:
    got, data = raw(echo, "POST", "/v1/chat/completions", {"model": "echo", "messages": HI, field: value})
    assert got == 400
    assert data["error"]["param"] == field and field in data["error"]["message"]
    assert (data["error"]["type"], data["error"]["code"]) == ("invalid_request_error", None)


def test_fields_that_ask_for_nothing_the_engine_lacks_are_accepted(echo: EngineServer) -> None:
    neutral = {"n": 1, "logprobs": False, "top_p": 1.0, "presence_penalty": 0, "user": "u-1", "metadata": {"a": "b"}}
    got, data = raw(echo, "POST", "/v1/chat/completions", {"model": "echo", "messages": HI, **neutral})
    assert got == 200 and data["choices"][0]["message"]["content"] == "hello there world"


def test_with_an_api_key_a_request_without_it_gets_openais_401_and_health_stays_open() -> None:
    with EngineServer(EchoEngine(), api_key="s3cret") as server:
        chat = {"model": "echo", "messages": HI}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            got, data = raw(server, "POST", "/v1/chat/completions", chat, **headers)
            assert got == 401 and data["error"]["code"] == "invalid_api_key" and "s3cret" not in json.dumps(data)
        assert raw(server, "GET", "/v1/models")[0] == 401
        assert raw(server, "POST", "/v1/chat/completions", chat, Authorization="Bearer s3cret")[0] == 200
        assert raw(server, "GET", "/health")[0] == 200
        with pytest.raises(openai.AuthenticationError):
            official(server).chat.completions.create(model="echo", messages=HI)  # type: ignore[arg-type]
        keyed = openai.OpenAI(base_url=server.url + "/v1", api_key="s3cret", max_retries=0)
        _official.append(keyed)
        assert keyed.chat.completions.create(model="echo", messages=HI).choices[0].message.content  # type: ignore[arg-type]
        assert (server.requests, server.refused) == (8, 5)


def test_an_engine_failure_mid_stream_reaches_both_clients_as_an_error(
    scripted: Tuple[EngineServer, ScriptedEngine],
) -> None:
    server, engine = scripted
    engine.add("partial ", Fail("out of memory"))
    with pytest.raises(openai.APIError, match="out of memory"):
        list(official(server).chat.completions.create(model="scripted", messages=HI, stream=True))  # type: ignore[arg-type]
    engine.add("partial ", Fail("out of memory"))
    ledger = minillm.Ledger()
    client = minillm.Client("openai/scripted", base_url=server.url + "/v1", on_cost=ledger)
    with pytest.raises(minillm.StreamError, match="out of memory") as caught:
        client.stream("go").collect()
    assert caught.value.partial_text == "partial " and ledger.count == 0
    client.close()


# -- health, disconnects, concurrency, shutdown ---------------------------------------------------


def test_health_says_ok_while_serving_and_not_once_draining(echo: EngineServer) -> None:
    status, data = raw(echo, "GET", "/health")
    assert status == 200 and data["status"] == "ok" and data["model"] == "echo" and data["running"] == 0
    echo.app.engine.drain(timeout=5)
    status, data = raw(echo, "GET", "/health")
    assert status == 503 and data["status"] == "draining"
    got, error = raw(echo, "POST", "/v1/chat/completions", {"model": "echo", "messages": HI})
    assert got == 503 and "takes no new requests" in error["error"]["message"]


def test_a_client_that_disconnects_mid_stream_stops_its_generation_and_the_server_serves_on(
    scripted: Tuple[EngineServer, ScriptedEngine],
) -> None:
    server, engine = scripted
    engine.add("first ", Gate(), "never")  # the engine is silent until the gate opens: it never does
    body = json.dumps({"model": "scripted", "messages": HI, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        received = b""
        while b"first" not in received:
            received += sock.recv(4096)
    # Gone while the engine waits between tokens: the generation is aborted.
    assert engine.wait_idle(timeout=10)
    engine.add("still ", "here")
    answer = official(server).chat.completions.create(model="scripted", messages=HI)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "still here"


class Together(Engine):
    """Answers only once ``count`` generations are running at the same time."""

    name = "together"

    def __init__(self, count: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(count, timeout=10)

    def _load(self) -> EngineConfig:
        return EngineConfig(model="together", context_length=100)

    def _generate(self, request: GenerationRequest, ctx: GenerationContext) -> Iterator[Output]:
        yield Output("waiting ")
        self.barrier.wait()
        yield Output("together")
        yield Output.final("stop", saturating_usage(1, 2))


def test_concurrent_clients_are_served_at_the_same_time() -> None:
    with EngineServer(Together(8)) as server:
        client = official(server)
        answers: List[str] = []
        lock = threading.Lock()

        def ask() -> None:
            stream = client.chat.completions.create(model="together", messages=HI, stream=True)  # type: ignore[arg-type]
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            with lock:
                answers.append(text)

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert answers == ["waiting together"] * 8


def test_stopping_the_server_lets_a_running_generation_finish_then_cleans_the_engine_up() -> None:
    gate = Gate()
    engine = ScriptedEngine(["a ", gate, "b"])
    server = EngineServer(engine).start()
    stream = official(server).chat.completions.create(model="scripted", messages=HI, stream=True)  # type: ignore[arg-type]
    chunks = iter(stream)
    assert next(chunks).choices[0].delta.role == "assistant"
    assert next(chunks).choices[0].delta.content == "a "
    stopping = threading.Thread(target=server.stop)
    stopping.start()
    gate.open()
    rest = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    stopping.join(10)
    assert rest == "b" and not stopping.is_alive()
    assert engine.health()["status"] == "stopped"


def test_minillm_itself_settles_a_served_stream_once(echo: EngineServer) -> None:
    ledger = minillm.Ledger()
    price = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")
    with minillm.Client("openai/echo", base_url=echo.url + "/v1", on_cost=ledger, price=price) as client:
        with client.stream("one two three") as stream:
            assert "".join(stream.text_stream()) == "one two three"
        finishes(lambda: client.complete("four"))
    assert ledger.count == 2
    assert [c.completion_tokens for c, _ in ledger.records] == [3, 1]
