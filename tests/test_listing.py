"""client.models(): each provider's list endpoint, page by page, against
the scripted loopback server."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

import minillm
from minillm import listing
from minillm.testing import RecordedRequest, Reply, ScriptedServer

from .conftest import SleepRecorder


def openai_list(*names: str) -> Dict[str, Any]:
    return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "system"} for name in names]}


@pytest.mark.parametrize(
    ("model", "path", "auth"),
    [
        ("openai/gpt-4o-mini", "/models", ("authorization", "Bearer sk-test")),
        ("openai/o3-pro", "/models", ("authorization", "Bearer sk-test")),  # a Responses-API model
        ("openrouter/anthropic/claude-haiku-4.5", "/models", ("authorization", "Bearer sk-test")),
        ("xai/grok-4", "/models", ("authorization", "Bearer sk-test")),
        ("groq/llama-3.3-70b-versatile", "/models", ("authorization", "Bearer sk-test")),
        ("deepseek/deepseek-chat", "/models", ("authorization", "Bearer sk-test")),
    ],
)
def test_openai_compatible_hosts_list_their_models_with_the_key(
    server: ScriptedServer, model: str, path: str, auth: Any
) -> None:
    server.reply(Reply.json(openai_list("gpt-4o-mini", "o3-pro")), method="GET", path=path)
    client = minillm.Client(model, api_key="sk-test", base_url=server.url)
    assert client.models() == ["gpt-4o-mini", "o3-pro"]
    (request,) = server.requests
    assert request.method == "GET" and request.path == path and request.body == b""
    assert request.headers[auth[0]] == auth[1] and "content-type" not in request.headers


def test_a_host_that_answers_with_a_bare_list_is_read_too(server: ScriptedServer) -> None:
    # Together's /v1/models is a JSON array of model objects.
    server.reply(Reply.json([{"id": "meta-llama/Llama-3.3-70B-Instruct-Turbo", "type": "chat"}]), path="/models")
    assert minillm.Client("together/x", api_key="k", base_url=server.url).models() == [
        "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    ]


def test_anthropic_is_followed_page_by_page_after_each_last_id(server: ScriptedServer) -> None:
    def page(request: RecordedRequest) -> Reply:
        after = request.query.get("after_id", [None])[0]
        pages = {
            None: (["claude-opus-4-1", "claude-sonnet-4-5"], True),
            "claude-sonnet-4-5": (["claude-haiku-4-5"], False),
        }
        names, more = pages[after]
        return Reply.json(
            {
                "data": [{"type": "model", "id": name, "display_name": name} for name in names],
                "first_id": names[0],
                "last_id": names[-1],
                "has_more": more,
            }
        )

    server.route("GET", "/v1/models", page)
    client = minillm.Client("anthropic/claude-haiku-4-5", api_key="sk-ant", base_url=server.url)
    assert client.models() == ["claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5"]
    first, second = server.requests
    assert first.query == {"limit": ["1000"]} and second.query == {"limit": ["1000"], "after_id": ["claude-sonnet-4-5"]}
    assert first.headers["x-api-key"] == "sk-ant" and "anthropic-version" in first.headers


def test_gemini_is_followed_by_page_token_and_names_lose_their_models_prefix(server: ScriptedServer) -> None:
    server.reply(
        Reply.json(
            {"models": [{"name": "models/gemini-2.5-flash"}, {"name": "models/gemini-2.5-pro"}], "nextPageToken": "p2"}
        ),
        Reply.json({"models": [{"name": "models/embedding-001"}]}),
        path="/models",
    )
    client = minillm.Client("gemini/gemini-2.5-flash", api_key="AIza-test", base_url=server.url)
    assert client.models() == ["gemini-2.5-flash", "gemini-2.5-pro", "embedding-001"]
    first, second = server.requests
    assert first.query == {"pageSize": ["1000"]} and second.query == {"pageSize": ["1000"], "pageToken": ["p2"]}
    assert first.headers["x-goog-api-key"] == "AIza-test" and "key" not in first.query


def test_ollama_lists_the_models_pulled_to_it(server: ScriptedServer) -> None:
    tags = {"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 2019393189}]}
    server.reply(Reply.json(tags), path="/api/tags")
    assert minillm.Client("ollama/llama3.2", base_url=server.url).models() == ["llama3.2:latest"]


def test_a_local_engine_lists_itself() -> None:
    assert minillm.Client("local/echo").models() == ["echo"]


@pytest.mark.parametrize(
    ("model", "kwargs"),
    [
        ("azure/my-deployment", {"api_key": "k", "base_url": "https://r.openai.azure.com"}),
        ("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", {"api_key": "k", "base_url": "http://127.0.0.1:9"}),
        (
            "vertex/gemini-2.5-flash",
            {"api_key": "ya29.token", "base_url": "http://127.0.0.1:9/v1/projects/p/locations/global"},
        ),
    ],
)
def test_a_provider_without_a_list_endpoint_says_so(model: str, kwargs: Any) -> None:
    provider = model.split("/")[0]
    with pytest.raises(minillm.ConfigurationError, match=f"^{provider} has no endpoint that lists its models$"):
        minillm.Client(model, **kwargs).models()


def test_a_rejected_key_is_an_authentication_error_without_the_key(server: ScriptedServer) -> None:
    server.reply(Reply.json({"error": {"message": "Incorrect API key provided: sk-bad"}}, status=401))
    with pytest.raises(minillm.AuthenticationError) as caught:
        minillm.Client("openai/m", api_key="sk-bad", base_url=server.url).models()
    assert "sk-bad" not in str(caught.value)


def test_a_page_that_fails_is_retried_under_the_clients_policy(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.reply(Reply.json({"error": {"message": "busy"}}, status=503), Reply.json(openai_list("m")))
    client = minillm.Client("openai/m", base_url=server.url, retry=minillm.RetryPolicy(sleep=sleeps))
    assert client.models() == ["m"] and len(server.requests) == 2


def test_an_answer_that_is_not_a_list_is_malformed(server: ScriptedServer) -> None:
    server.reply(Reply.json({"models": "none"}))
    with pytest.raises(minillm.MalformedResponseError, match="not a model list"):
        minillm.Client("openai/m", base_url=server.url).models()


def test_a_list_that_keeps_pointing_onwards_is_cut_off(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "MAX_PAGES", 5)
    tokens: List[str] = []

    def endless(request: RecordedRequest) -> Reply:
        tokens.append(str(len(tokens)))
        return Reply.json({"models": [{"name": "models/m"}], "nextPageToken": tokens[-1]})

    server.route("GET", "/models", endless)
    assert minillm.Client("gemini/m", api_key="k", base_url=server.url).models() == ["m"]
    assert len(server.requests) == 5


def test_a_page_token_seen_before_ends_the_list(server: ScriptedServer) -> None:
    again = {"models": [{"name": "models/a"}], "nextPageToken": "same"}
    server.reply(
        Reply.json(again), Reply.json({"models": [{"name": "models/b"}], "nextPageToken": "same"}), path="/models"
    )
    assert minillm.Client("gemini/m", api_key="k", base_url=server.url).models() == ["a", "b"]
    assert len(server.requests) == 2


def test_a_closed_client_lists_nothing(server: ScriptedServer) -> None:
    client = minillm.Client("openai/m", base_url=server.url)
    client.close()
    with pytest.raises(minillm.ConfigurationError, match="closed"):
        client.models()
    assert server.requests == []
