"""Every request a route sends -- a call's attempts, a retry, a cost
look-up, a token count, a model listing -- goes through the route's
credentials just before it is sent, and adapters hold none."""

from __future__ import annotations

import threading
from typing import List

import attrs
import pytest

import minillm
from minillm.providers.bedrock import SigV4Signer
from minillm.providers.vertex import APPLICATION_DEFAULT
from minillm.testing import Reply, ScriptedServer, chat_stream, chat_usage, openrouter_generation
from minillm.transports import HTTPRequest
from minillm.transports.credentials import NO_CREDENTIALS, Credentials

from .conftest import SleepRecorder


class Stamping(Credentials):
    """Adds a header that counts the requests it authorized."""

    def __init__(self) -> None:
        self.paths: List[str] = []
        self._lock = threading.Lock()

    def authorize(self, request: HTTPRequest) -> HTTPRequest:
        with self._lock:
            self.paths.append(request.url.rsplit("/", 1)[-1].split("?")[0])
            number = len(self.paths)
        return attrs.evolve(request, headers={**request.headers, "X-Stamp": str(number)})


def stamped(client: minillm.Client, credentials: Credentials) -> minillm.Client:
    client._routes = tuple(attrs.evolve(route, credentials=credentials) for route in client._routes)
    return client


def test_every_kind_of_request_is_authorized_as_it_is_sent(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    credentials = Stamping()
    client = stamped(
        minillm.Client(
            "openrouter/anthropic/claude-haiku-4.5",
            api_key="sk-or-test",
            base_url=server.url,
            retry=minillm.RetryPolicy(sleep=sleeps),
            on_cost=minillm.Ledger(),
        ),
        credentials,
    )
    busy = Reply.json({"error": {"message": "busy", "code": 503}}, status=503)
    answer = Reply.sse(chat_stream(["Hi"], usage=chat_usage(3, 1)), headers=[("X-Generation-Id", "gen-1")])
    server.reply(busy, answer, path="/chat/completions")
    server.reply(Reply.json({"data": [{"id": "a/b"}]}), method="GET", path="/models")
    server.route("GET", "/generation", lambda request: Reply.json(openrouter_generation("gen-1", total_cost=0.001)))
    with client.stream("Hi") as stream:
        stream.cancel()  # cut short before its usage: looked up by id
    assert client.flush(timeout=10)
    assert client.models() == ["a/b"]
    client.close()
    # the attempt, its retry, the look-up and the listing: each stamped once, in turn
    assert credentials.paths == ["completions", "completions", "generation", "models"]
    assert [request.headers["x-stamp"] for request in server.requests] == ["1", "2", "3", "4"]


def test_a_count_is_authorized_too(server: ScriptedServer) -> None:
    credentials = Stamping()
    client = stamped(minillm.Client("anthropic/claude-test", api_key="k", base_url=server.url), credentials)
    server.reply(Reply.json({"input_tokens": 5}))
    assert client.count_tokens("Hi") == 5
    client.close()
    assert credentials.paths == ["count_tokens"]
    assert server.requests[0].headers["x-stamp"] == "1"


@pytest.mark.parametrize(
    ("model", "env", "expected"),
    [
        ("openai/gpt-4o-mini", {}, NO_CREDENTIALS),
        ("vertex/gemini-2.5-flash", {"GOOGLE_CLOUD_PROJECT": "p"}, APPLICATION_DEFAULT),
        ("bedrock/amazon.nova-lite-v1:0", {"AWS_REGION": "us-west-2"}, SigV4Signer),
    ],
)
def test_a_route_holds_the_credentials_its_adapter_names_and_a_given_key_needs_none(
    model: str, env: dict, expected: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("VERTEX_ACCESS_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    (route,) = minillm.Client(model, api_key=None if expected is not NO_CREDENTIALS else "k")._routes
    if isinstance(expected, type):
        assert isinstance(route.credentials, expected)
    else:
        assert route.credentials is expected
    (keyed,) = minillm.Client(model, api_key="a-key")._routes
    assert keyed.credentials is NO_CREDENTIALS  # the key is in the headers already
    assert "credentials" not in vars(route.adapter) and "_credentials" not in vars(route.adapter)


def test_an_adapter_written_for_authorize_is_refused_rather_than_left_unsigned() -> None:
    from minillm.providers.openai_chat import ChatCompletionsAdapter

    with pytest.raises(TypeError, match=r"credentials\(\)"):

        class Signed(ChatCompletionsAdapter):
            def authorize(self, request: HTTPRequest) -> HTTPRequest:  # pragma: no cover - never made
                return request
