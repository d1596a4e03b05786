"""No error message, repr or log line ever carries an API key: every error
path, with a canary key the server echoes back and DEBUG logging on."""

from __future__ import annotations

import logging
import socket
import traceback
from typing import Any, Callable, Iterator, List

import pytest

import minillm
from minillm.testing import (
    Drop,
    Gate,
    RecordedRequest,
    Reply,
    ScriptedServer,
    chat_chunk,
    chat_stream,
    chat_usage,
    sse,
)

CANARY = "sk-canary-7f3a9c1e5b2d4680aa"


def chat_reply(server: ScriptedServer, *replies: Reply) -> None:
    """Queue ``replies`` for the chat endpoint only: a failed OpenRouter
    stream is looked up (``GET /generation``), and the look-up must not take
    a reply meant for the next request."""
    server.reply(*replies, path="/chat/completions")


def echo(status: int, content_type: str = "application/json") -> Callable[[RecordedRequest], Reply]:
    """A reply that repeats the Authorization header it received, as some
    providers do in their error messages."""

    def reply(request: RecordedRequest) -> Reply:
        seen = request.headers.get("authorization", "")
        if content_type == "application/json":
            return Reply.json(
                {"error": {"message": f"Incorrect API key provided: {seen} ({CANARY[:12]}...)"}}, status=status
            )
        return Reply.text(f"<html>denied for {seen}</html>", status=status, content_type=content_type)

    return reply


def everything_about(exc: BaseException) -> str:
    parts = ["".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), repr(exc), str(vars(exc))]
    return "\n".join(parts)


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


@pytest.fixture
def client(server: ScriptedServer, sleeps: Any) -> minillm.Client:
    return minillm.Client(
        "openrouter/x/y",
        api_key=CANARY,
        base_url=server.url,
        retry=minillm.RetryPolicy(sleep=sleeps),
        timeout=minillm.Timeout(read=0.3),
        lookup=minillm.LookupPolicy(initial_delay=0.0, max_delay=0.01, timeout=0.2),
        on_cost=lambda cost, meta: (_ for _ in ()).throw(RuntimeError(f"sink failed for {meta}")),
    )


def assert_clean(*texts: str) -> None:
    for text in texts:
        assert CANARY not in text
        assert CANARY[3:] not in text


@pytest.mark.parametrize(
    "status_and_type",
    [(401, "application/json"), (403, "text/html"), (500, "application/json"), (429, "application/json")],
)
def test_http_errors_that_echo_the_key_never_show_it(
    status_and_type: Any, server: ScriptedServer, client: minillm.Client, debug_log: pytest.LogCaptureFixture
) -> None:
    status, content_type = status_and_type
    server.route("POST", "/chat/completions", echo(status, content_type))
    with pytest.raises(minillm.APIError) as caught:
        client.complete("Hi")
    assert_clean(everything_about(caught.value), str(caught.value.body), debug_log.text)
    assert "***" in str(caught.value)


def test_an_in_band_error_that_echoes_the_key_never_shows_it(
    server: ScriptedServer, client: minillm.Client, debug_log: pytest.LogCaptureFixture
) -> None:
    error = {"error": {"message": f"upstream rejected Bearer {CANARY}", "code": 502}}
    chat_reply(server, Reply.sse([sse(chat_chunk(content="a")), sse(error)]))
    with pytest.raises(minillm.StreamError) as caught:
        list(client.stream("Hi"))
    assert_clean(everything_about(caught.value), debug_log.text)


def test_a_malformed_body_that_contains_the_key_never_shows_it(
    server: ScriptedServer, client: minillm.Client, debug_log: pytest.LogCaptureFixture
) -> None:
    chat_reply(server, Reply.text(f"oops {CANARY}", content_type="application/json"))
    with pytest.raises(minillm.MalformedResponseError) as caught:
        client.complete("Hi")
    assert_clean(everything_about(caught.value), debug_log.text)


def test_transport_failures_never_show_the_key(
    server: ScriptedServer, client: minillm.Client, sleeps: Any, debug_log: pytest.LogCaptureFixture
) -> None:
    failures: List[BaseException] = []
    chat_reply(server, Reply.sse([sse(chat_chunk(content="a")), Drop()]))
    with pytest.raises(minillm.StreamError) as dropped:
        list(client.stream("Hi"))
    failures.append(dropped.value)
    gate = Gate()
    chat_reply(server, Reply.sse([sse(chat_chunk(content="a")), gate]))
    with pytest.raises(minillm.APITimeoutError) as timed_out:
        list(client.stream("Hi"))
    gate.open()
    failures.append(timed_out.value)
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    unreachable = minillm.Client(
        "openrouter/x/y", api_key=CANARY, base_url=f"http://127.0.0.1:{port}", retry=minillm.RetryPolicy(sleep=sleeps)
    )
    with pytest.raises(minillm.APIConnectionError) as refused:
        unreachable.complete("Hi")
    failures.append(refused.value)
    assert_clean(debug_log.text, *(everything_about(f) for f in failures))


def test_retries_look_ups_and_sink_failures_never_log_the_key(
    server: ScriptedServer, client: minillm.Client, debug_log: pytest.LogCaptureFixture
) -> None:
    chat_reply(
        server,
        Reply.json({"error": {"message": f"overloaded, key {CANARY}"}}, status=503),
        Reply.sse([sse(chat_chunk(id="gen-1", content="a")), *chat_stream(["b"], usage=chat_usage(1, 1, cost=0.001))]),
        Reply.sse([sse(chat_chunk(id="gen-2", content="a"))]),
    )
    server.route("GET", "/generation", echo(401))
    with client.stream("Hi") as stream:
        list(stream)
    with pytest.raises(minillm.StreamError):
        with client.stream("Hi") as stream:
            list(stream)
    chat_reply(server, Reply.sse([sse(chat_chunk(id="gen-3", content="a")), Drop()]))
    try:
        for _ in client.stream("Hi"):
            break
    except minillm.StreamError:  # pragma: no cover - the break comes first
        pass
    assert client.flush(timeout=10)
    messages = [r.getMessage() for r in debug_log.records]
    assert any("retrying openrouter request" in m for m in messages)
    assert any("the on_cost sink raised" in m for m in messages)
    assert_clean(debug_log.text)


def test_reprs_never_show_the_key(server: ScriptedServer, client: minillm.Client) -> None:
    chat_reply(server, Reply.sse(chat_stream(["a"], usage=chat_usage(1, 1, cost=0.001))))
    with client.stream("Hi") as stream:
        list(stream)
    assert stream.response is not None
    assert_clean(
        repr(client),
        repr(stream),
        repr(stream.response),
        repr(stream.cost),
        repr(client._routes[0].adapter.config),
        repr(client._config),
    )


@pytest.mark.parametrize("name", ["../../upload/v1beta/files", "x?key=1", "a#b", "a/b", "..", ""])
def test_a_model_name_that_would_change_the_path_is_refused_before_anything_is_sent(name: str) -> None:
    with pytest.raises(minillm.ConfigurationError, match=r"cannot be part of a URL|provider/model-name"):
        minillm.Client(f"gemini/{name}", api_key=CANARY)


def chain_of(exc: BaseException) -> str:
    """Everything a traceback would print, cause and context included."""
    return everything_about(exc) + "".join(
        everything_about(linked) for linked in (exc.__cause__, exc.__context__) if linked is not None
    )


#: A second secret the client does not know (so cannot scrub): a key for
#: another service passed in a header of its own.
OTHER = "tok-other-31d7e0b2c9a84f65"


@pytest.mark.parametrize("value", [OTHER + "\n", OTHER + "\r\nX-Injected: 1", "Bearer \x00" + OTHER, OTHER + "\u2603"])
def test_a_header_value_that_cannot_be_sent_is_refused_without_showing_it(
    value: str, server: ScriptedServer, client: minillm.Client, debug_log: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match="X-Auth") as caught:
        client.complete("Hi", extra_headers={"X-Auth": value})
    shown = chain_of(caught.value) + debug_log.text
    assert OTHER not in shown and OTHER[4:] not in shown
    assert server.requests == []


@pytest.mark.parametrize("name", ["X Auth", "X-Auth:", "", "X-\u00e9"])
def test_a_header_name_that_is_not_a_token_is_refused(name: str, client: minillm.Client) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match="not an HTTP header name"):
        client.complete("Hi", extra_headers={name: "v"})


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{CANARY}@127.0.0.1:9/v1",
        f"https://user:{CANARY}@/v1",
        f"user:{CANARY}@127.0.0.1:9/v1",
        f"http://user:{CANARY}[@127.0.0.1/v1",
        f"http://127.0.0.1:9/v1?key={CANARY}",
    ],
)
def test_a_base_url_with_credentials_is_refused_without_showing_them(url: str) -> None:
    with pytest.raises(minillm.ConfigurationError, match="base_url") as caught:
        minillm.Client("openai/m", api_key="sk-x", base_url=url)
    assert_clean(chain_of(caught.value))


def test_a_key_a_header_cannot_carry_is_refused_at_construction_without_showing_it() -> None:
    key = CANARY + "\u00e9"
    with pytest.raises(minillm.ConfigurationError, match="not ASCII") as caught:
        minillm.Client("openai/m", api_key=key)
    assert_clean(chain_of(caught.value))


def test_the_served_request_log_masks_a_key_in_the_query_string(caplog: pytest.LogCaptureFixture) -> None:
    import http.client

    from minillm.engines import EchoEngine
    from minillm.serve import EngineServer

    with caplog.at_level(logging.INFO, logger="minillm"):
        with EngineServer(EchoEngine()) as served:
            connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
            try:
                connection.request("GET", f"/v1/models?key={CANARY}")
                assert connection.getresponse().status == 200
            finally:
                connection.close()
    lines = [r.getMessage() for r in caplog.records if "/v1/models" in r.getMessage()]
    assert lines, "the request was not logged"
    assert_clean(*lines)
