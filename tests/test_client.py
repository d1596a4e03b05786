"""The Client: configuration, complete(), request building through the
adapters, error bodies, and fallbacks -- against a real loopback server."""

from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal
from typing import Any, Callable, List, Optional

import pytest

import minillm
from minillm import Resolution
from minillm.testing import Reply, ScriptedServer, chat_chunk, chat_completion, chat_stream, chat_usage, sse
from minillm.testing.server import Gate, Hang, Pause

from .conftest import SleepRecorder

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")

# -- configuration ----------------------------------------------------------------------------


def test_the_provider_is_the_first_segment_and_the_rest_is_sent_verbatim(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(chat_completion("ok", usage=chat_usage(1, 1, cost=0.00001))))
    client = make_client("openrouter/anthropic/claude-haiku-4.5")
    client.complete("Hi")
    assert (client.provider, client.model_name) == ("openrouter", "anthropic/claude-haiku-4.5")
    assert server.requests[0].json()["model"] == "anthropic/claude-haiku-4.5"


@pytest.mark.parametrize("model", ["gpt-4o", "openai/", "/gpt-4o", "", None])
def test_a_model_without_a_provider_is_a_configuration_error(model: Any) -> None:
    with pytest.raises(minillm.ConfigurationError, match="provider/model"):
        minillm.Client(model)


def test_an_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(
        minillm.ConfigurationError, match=r"unknown provider 'nope'.*openai, openrouter, together, vertex, xai"
    ):
        minillm.Client("nope/model")


@pytest.mark.parametrize(
    ("model", "variable"),
    [("openai/gpt-4o", "OPENAI_API_KEY"), ("openrouter/a/b", "OPENROUTER_API_KEY"), ("xai/grok-4", "XAI_API_KEY")],
)
def test_a_missing_key_names_the_variable_to_set(model: str, variable: str) -> None:
    with pytest.raises(minillm.ConfigurationError, match=f"set {variable}"):
        minillm.Client(model)


def test_keys_and_base_urls_come_from_the_environment(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XAI_API_KEY", "xai-env-key")
    monkeypatch.setenv("XAI_BASE_URL", server.url + "/")
    server.reply(Reply.json(chat_completion("ok")))
    client = minillm.Client("xai/grok-4")
    assert client.base_url == server.url
    client.complete("Hi")
    request = server.requests[0]
    assert request.path == "/chat/completions"
    assert request.headers["authorization"] == "Bearer xai-env-key"


def test_arguments_win_over_the_environment(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/unused")
    server.reply(Reply.json(chat_completion("ok")))
    minillm.Client("openai/m", api_key="arg-key", base_url=server.url + "/v1/").complete("Hi")
    assert server.requests[0].path == "/v1/chat/completions"
    assert server.requests[0].headers["authorization"] == "Bearer arg-key"


def test_a_compatible_server_needs_no_key_and_gets_no_authorization_header(server: ScriptedServer) -> None:
    server.reply(Reply.json(chat_completion("ok")))
    minillm.Client("openai/local-model", base_url=server.url).complete("Hi")
    assert "authorization" not in server.requests[0].headers


def test_a_base_url_that_is_not_http_is_a_configuration_error() -> None:
    with pytest.raises(minillm.ConfigurationError, match="http"):
        minillm.Client("openai/m", base_url="localhost:8000")


def test_the_repr_names_the_model_and_base_url_but_never_the_key() -> None:
    client = minillm.Client("openai/gpt-4o", api_key="sk-canary-repr-0001")
    assert repr(client) == "Client('openai/gpt-4o', base_url='https://api.openai.com/v1')"
    assert "canary" not in repr(client.__dict__)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_url": "http://[::1"}, "base_url"),
        ({"base_url": "https://"}, "base_url"),
        ({"price": 0.5}, "TokenPrice"),
        ({"retry": 3}, "RetryPolicy"),
        ({"meta": ["x"]}, "meta"),
        ({"on_cost": 42}, "on_cost"),
        ({"timeout": "slow"}, "timeout"),
        ({"fallbacks": [3]}, "fallback"),
        ({"api": "completions"}, "api='completions'"),
    ],
)
def test_bad_client_settings_are_configuration_errors(kwargs: Any, match: str) -> None:
    with pytest.raises(minillm.ConfigurationError, match=match):
        minillm.Client("openai/m", api_key="k", **kwargs)


def test_a_client_is_a_context_manager(server: ScriptedServer) -> None:
    server.reply(Reply.json(chat_completion("ok")))
    with minillm.Client("openai/m", base_url=server.url) as client:
        assert client.complete("Hi").text == "ok"


def test_a_closed_client_refuses_new_calls_but_lets_an_open_stream_finish(server: ScriptedServer) -> None:
    server.reply(Reply.sse(chat_stream(["Hel", "lo"], usage=chat_usage(3, 2))))
    ledger = minillm.Ledger()
    with minillm.Client("openai/m", base_url=server.url, on_cost=ledger) as client:
        stream = client.stream("Hi")
    client.close()  # idempotent
    with stream:
        assert "".join(stream.text_stream()) == "Hello"
    for call in (client.complete, client.stream):
        with pytest.raises(minillm.ConfigurationError, match="openai/m is closed"):
            call("Hi")
    assert len(server.requests) == 1 and ledger.count == 1


def test_max_retries_counts_retries_after_the_first_attempt(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.reply(*[Reply.json({"error": {"message": "busy"}}, status=503)] * 3)
    client = minillm.Client("openai/m", base_url=server.url, max_retries=1)
    assert client._config.retry.max_attempts == 2
    with pytest.raises(minillm.ServerError):
        client.complete("Hi")
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_retries": -1}, "max_retries must be an integer >= 0"),
        ({"max_retries": 2.0}, "max_retries must be an integer >= 0"),
        ({"max_retries": 2, "retry": minillm.RetryPolicy(max_attempts=2)}, "means 3 attempts, but retry= allows 2"),
    ],
)
def test_max_retries_that_is_not_a_count_or_disagrees_with_retry_is_refused(kwargs: Any, match: str) -> None:
    with pytest.raises(minillm.ConfigurationError, match=match):
        minillm.Client("openai/m", api_key="k", **kwargs)


def test_max_retries_that_agrees_with_retry_keeps_the_policy() -> None:
    policy = minillm.RetryPolicy(max_attempts=4, initial_delay=0)
    assert minillm.Client("openai/m", api_key="k", retry=policy, max_retries=3)._config.retry is policy


def test_a_timeout_given_to_one_call_bounds_that_call_only(server: ScriptedServer) -> None:
    gate = Gate()
    server.reply(
        Reply.json(chat_completion("late")).held(gate),
        Reply.json(chat_completion("slow but allowed")),
    )
    client = minillm.Client("openai/m", base_url=server.url, retry=minillm.RetryPolicy(max_attempts=1))
    started = time.monotonic()
    with pytest.raises(minillm.APITimeoutError):
        client.complete("Hi", timeout=0.2)
    assert time.monotonic() - started < 5
    gate.open()
    assert client.complete("Hi", timeout=minillm.Timeout(read=30)).text == "slow but allowed"


def test_a_number_for_one_call_is_its_read_timeout_and_keeps_the_clients_other_deadlines() -> None:
    base = minillm.Timeout(connect=3, read=60, total=120)
    assert base.for_call(5) == minillm.Timeout(connect=3, read=5, total=120)
    assert base.for_call(None) is None
    assert base.for_call(minillm.Timeout(read=1)) == minillm.Timeout(read=1)


def test_a_total_timeout_for_one_call_ends_a_stream_that_keeps_dripping(server: ScriptedServer) -> None:
    server.reply(Reply.sse([sse(chat_chunk(content="tick")), Hang()]))
    client = minillm.Client("openai/m", base_url=server.url)
    with pytest.raises(minillm.APITimeoutError), client.stream("Hi", timeout=minillm.Timeout(total=0.3)) as s:
        for _ in s:
            pass


# -- request building --------------------------------------------------------------------------


def test_openai_itself_gets_max_completion_tokens_and_compatible_servers_get_max_tokens(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from minillm.providers import PROVIDERS

    server.reply(Reply.json(chat_completion("a")), Reply.json(chat_completion("b")))
    # Point "OpenAI's own URL" at the loopback server to see what it would be sent.
    monkeypatch.setattr(PROVIDERS["openai"], "default_base_url", server.url)
    minillm.Client("openai/gpt-5", api_key="k").complete("Hi", max_tokens=7)
    minillm.Client("openai/llama", base_url=server.url + "/v1").complete("Hi", max_tokens=7)
    official, compatible = (r.json() for r in server.requests)
    assert official["max_completion_tokens"] == 7 and "max_tokens" not in official
    assert compatible["max_tokens"] == 7 and "max_completion_tokens" not in compatible


def test_every_common_option_reaches_the_wire(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(chat_completion("ok")))
    tools = [{"name": "weather", "parameters": {"type": "object", "properties": {}}}]
    make_client().complete(
        [{"role": "user", "content": "Hi"}],
        system="Be brief.",
        temperature=0.2,
        stop=["END"],
        tools=tools,
        tool_choice="weather",
        thinking_budget=1000,
        extra_body={"seed": 7, "temperature": 0.3},
        extra_headers={"X-Request-Id": "abc"},
    )
    request = server.requests[0]
    body = request.json()
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert body["temperature"] == 0.3 and body["seed"] == 7  # extra_body wins
    assert body["stop"] == ["END"] and body["reasoning_effort"] == "low"
    assert body["tools"][0] == {"type": "function", "function": tools[0]}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert "stream" not in body
    assert request.headers["x-request-id"] == "abc"
    assert request.headers["user-agent"].startswith("minillm/")


def test_openrouter_gets_attribution_headers_and_a_reasoning_budget(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(chat_completion("ok", usage=chat_usage(1, 1, cost=0.00001))))
    make_client("openrouter/a/b", app_url="https://example.com", app_title="My app").complete(
        "Hi", thinking_budget=4096
    )
    request = server.requests[0]
    assert request.headers["http-referer"] == "https://example.com"
    assert request.headers["x-title"] == "My app"
    assert request.json()["reasoning"] == {"max_tokens": 4096}


def test_a_server_that_rejects_stream_options_is_retried_once_without_and_remembered(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    rejection = {"error": {"message": "Unrecognized request argument supplied: stream_options", "code": None}}
    server.reply(
        Reply.json(rejection, status=400),
        Reply.sse(chat_stream(["no usage here"], usage=None)),
        Reply.sse(chat_stream(["again"], usage=None)),
    )
    client = make_client()
    for _ in range(2):
        with client.stream("Hi") as stream:
            list(stream)
    sent = [r.json() for r in server.requests]
    assert "stream_options" in sent[0]
    assert "stream_options" not in sent[1] and "stream_options" not in sent[2]
    assert ledger.count == 2 and all(c.resolution is Resolution.UNKNOWN for c, _ in ledger.records)


def test_a_422_naming_stream_options_counts_too_but_other_400s_do_not_retry(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    detail = {"detail": [{"type": "extra_forbidden", "loc": ["body", "stream_options"], "msg": "Extra inputs"}]}
    server.reply(Reply.json(detail, status=422), Reply.sse(chat_stream(["ok"], usage=None)))
    with make_client().stream("Hi") as stream:
        list(stream)
    server.reply(Reply.json({"error": {"message": "model not found"}}, status=400))
    with pytest.raises(minillm.BadRequestError):
        make_client().stream("Hi")
    assert len(server.requests) == 3


# -- complete() ------------------------------------------------------------------------------------


def test_complete_returns_a_settled_response(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    calls = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]
    server.reply(Reply.json(chat_completion("", usage=chat_usage(10, 3), finish_reason="tool_calls", tool_calls=calls)))
    response = make_client(price=PRICE).complete("Hi", meta={"k": "v"})
    assert response.tool_calls == [minillm.ToolCall(id="call_1", name="f", arguments='{"a":1}')]
    assert response.finish_reason == "tool_calls" and response.raw["id"] == "chatcmpl-test"
    assert response.cost is not None and response.cost.usd == Decimal("0.000016")
    assert ledger.records == [(response.cost, {"k": "v"})]


def test_complete_without_usage_books_a_lower_bound_never_an_exact_figure(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.json(chat_completion("ok")))
    response = make_client(price=PRICE).complete("Hi")
    # The answer has at least one output token; how many more, and the prompt, nobody said.
    assert response.cost is not None and response.cost.resolution is Resolution.PARTIAL
    assert (response.cost.prompt_tokens, response.cost.completion_tokens) == (0, 1)
    assert response.cost.cancelled is False and ledger.count == 1


def test_complete_moves_think_tags_into_thinking(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(chat_completion("<think>hmm</think>\nYes.")))
    response = make_client().complete("Hi")
    assert (response.text, response.thinking) == ("Yes.", "hmm")


@pytest.mark.parametrize(
    ("reply", "cls", "match"),
    [
        (Reply.json({"error": {"message": "Incorrect API key"}}, status=401), minillm.AuthenticationError, "401"),
        (Reply.json({"error": {"message": "no such model"}}, status=404), minillm.NotFoundError, "no such model"),
        (
            Reply.json({"error": {"message": "Insufficient credits", "code": 402}}, status=402),
            minillm.APIError,
            "Insufficient credits",
        ),
        (
            Reply.json(
                {"error": {"message": "This model's maximum context length is 8192 tokens", "code": "x"}}, status=400
            ),
            minillm.ContextOverflowError,
            "maximum context",
        ),
        (
            Reply.text("<html><body><h1>502 Bad Gateway</h1></body></html>", status=502, content_type="text/html"),
            minillm.ServerError,
            "HTML page",
        ),
    ],
)
def test_error_statuses_raise_their_class_with_a_short_clear_message(
    reply: Reply, cls: type, match: str, server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    for _ in range(3):
        server.reply(reply)
    with pytest.raises(cls, match=match) as caught:
        make_client().complete("Hi")
    error = caught.value
    assert error.status_code == reply.status and error.provider == "openai"  # type: ignore[attr-defined]
    assert error.endpoint == server.url + "/chat/completions"  # type: ignore[attr-defined]
    assert len(str(error)) < 400


@pytest.mark.parametrize(
    ("reply", "match", "booked"),
    [
        (Reply.text("", content_type="application/json"), "empty body", 1),
        (Reply.text('{"id": "chatcmpl-1", "choi', content_type="application/json"), "not valid JSON", 1),
        # A page of HTML is a proxy or a web server answering, not the API: nothing to bill.
        (Reply.text("<html>maintenance</html>", content_type="text/html"), "HTML", 0),
        (Reply.json({"object": "list"}), "no choices", 1),
    ],
)
def test_an_unusable_success_body_is_a_malformed_response_error(
    reply: Reply,
    match: str,
    booked: int,
    server: ScriptedServer,
    make_client: Callable[..., minillm.Client],
    ledger: minillm.Ledger,
) -> None:
    server.reply(reply)
    with pytest.raises(minillm.MalformedResponseError, match=match) as caught:
        make_client().complete("Hi")
    assert caught.value.status_code == 200
    # The API answered with a success status: it may have billed the request.
    assert [(c.failed, c.resolution) for c, _ in ledger.records] == [(True, Resolution.UNKNOWN)] * booked


def test_an_error_object_in_a_success_body_raises_its_status_class(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.json({"error": {"message": "Invalid model", "code": 400}}))
    with pytest.raises(minillm.BadRequestError, match="Invalid model"):
        make_client().complete("Hi")
    assert len(server.requests) == 1
    ((cost, _),) = ledger.records  # answered with a success status: it may be billed
    assert cost.failed and cost.resolution is Resolution.UNKNOWN


def test_a_retryable_error_object_in_a_success_body_is_retried(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger, sleeps: SleepRecorder
) -> None:
    server.reply(Reply.json({"error": {"message": "Rate limit exceeded", "code": 429}}))
    server.reply(Reply.json({"error": {"message": "Upstream failed", "code": 502}}))
    server.reply(Reply.json(chat_completion("third time", usage=chat_usage(4, 2))))
    response = make_client(price=PRICE).complete("Hi")
    assert response.text == "third time"
    assert len(server.requests) == 3
    assert len(sleeps.calls) == 2 and sleeps.calls[0] >= 5.0  # the 429 waited at least the floor
    assert [(cost.attempt, cost.failed, cost.usd) for cost, _ in ledger.records] == [
        (1, True, None),
        (2, True, None),
        (3, False, Decimal("0.000008")),
    ]


def test_a_retryable_error_object_in_a_success_body_raises_once_exhausted(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    for _ in range(3):
        server.reply(Reply.json({"error": {"message": "Rate limit exceeded", "code": 429}}))
    with pytest.raises(minillm.RateLimitError, match="Rate limit exceeded"):
        make_client().complete("Hi")
    assert len(server.requests) == 3
    assert [(cost.attempt, cost.failed) for cost, _ in ledger.records] == [(1, True), (2, True), (3, True)]


def test_a_server_that_ignores_stream_true_is_read_as_one_chunk(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    server.reply(Reply.json(chat_completion("whole answer", usage=chat_usage(4, 2))))
    with make_client(price=PRICE).stream("Hi") as stream:
        assert [c.text for c in stream] == ["whole answer"]
    assert ledger.records[0][0].usd == Decimal("0.000008")


def test_an_html_page_instead_of_an_event_stream_is_malformed(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.text("<html>login</html>", content_type="text/html"))
    with pytest.raises(minillm.MalformedResponseError, match="HTML"):
        make_client().stream("Hi")


def test_a_redirect_is_not_followed_but_explained(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply(status=301, headers=(("Location", "https://elsewhere.example/v1"),)))
    with pytest.raises(minillm.APIError, match=r"redirected the request to https://elsewhere\.example/v1"):
        make_client().complete("Hi")


def test_an_unreachable_server_is_a_connection_error_after_retries(sleeps: Any) -> None:
    import socket

    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    client = minillm.Client("openai/m", base_url=f"http://127.0.0.1:{port}", retry=minillm.RetryPolicy(sleep=sleeps))
    with pytest.raises(minillm.APIConnectionError, match=f"127.0.0.1:{port}"):
        client.complete("Hi")
    assert len(sleeps.calls) == 2


# -- fallbacks -----------------------------------------------------------------------------------


def test_a_fallback_serves_when_the_primary_is_exhausted_and_the_cost_is_booked_against_it(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger, sleeps: Any
) -> None:
    server.reply(*[Reply.json({"error": {"message": "down"}}, status=503)] * 3, path="/primary/chat/completions")
    server.reply(Reply.sse(chat_stream(["rescued"], usage=chat_usage(5, 1))), path="/backup/chat/completions")
    backup = minillm.Client("openai/backup-model", base_url=server.url + "/backup", price=PRICE)
    client = make_client("openai/primary-model", base_url=server.url + "/primary", fallbacks=[backup])
    with client.stream("Hi", meta={"user_id": 1}) as stream:
        assert "".join(stream.text_stream()) == "rescued"
    [(cost, meta)] = ledger.records
    assert (cost.model, cost.provider, cost.usd, meta) == (
        "backup-model",
        "openai",
        Decimal("0.000007"),
        {"user_id": 1},
    )
    assert [r.path for r in server.requests] == ["/primary/chat/completions"] * 3 + ["/backup/chat/completions"]


def test_a_primary_without_a_key_goes_straight_to_a_fallback_string(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, ledger: minillm.Ledger
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-env")
    monkeypatch.setenv("OPENROUTER_BASE_URL", server.url)
    server.reply(Reply.json(chat_completion("from the fallback", usage=chat_usage(1, 1, cost=0.0002))))
    client = minillm.Client("openai/gpt-4o", fallbacks=["openrouter/openai/gpt-4o"], on_cost=ledger)
    assert client.complete("Hi").text == "from the fallback"
    assert server.requests[0].headers["authorization"] == "Bearer sk-or-env"
    assert ledger.records[0][0].provider == "openrouter" and ledger.records[0][0].usd == Decimal("0.0002")


@pytest.mark.parametrize(
    ("status", "message", "cls"),
    [
        (400, "bad request", minillm.BadRequestError),
        (400, "maximum context length exceeded", minillm.ContextOverflowError),
        (401, "bad key", minillm.AuthenticationError),
    ],
)
def test_bad_requests_overflows_and_rejected_keys_do_not_fall_back(
    status: int, message: str, cls: type, server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json({"error": {"message": message}}, status=status))
    backup = minillm.Client("openai/backup", base_url=server.url + "/backup")
    with pytest.raises(cls):
        make_client(fallbacks=[backup]).complete("Hi")
    assert len(server.requests) == 1


def test_when_every_candidate_fails_the_last_error_is_raised(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], caplog: pytest.LogCaptureFixture
) -> None:
    server.reply(*[Reply.json({"error": {"message": "down"}}, status=503)] * 3, path="/a/chat/completions")
    server.reply(*[Reply.json({"error": {"message": "also down"}}, status=502)] * 3, path="/b/chat/completions")
    backup = minillm.Client("openai/b", base_url=server.url + "/b", retry=minillm.RetryPolicy(sleep=lambda s: None))
    with caplog.at_level(logging.WARNING, logger="minillm"):
        with pytest.raises(minillm.ServerError, match="also down"):
            make_client("openai/a", base_url=server.url + "/a", fallbacks=[backup]).complete("Hi")
    assert any("falling back to openai/b" in r.getMessage() for r in caplog.records)


# -- threads ----------------------------------------------------------------------------------------


def test_one_client_serves_many_threads_at_once(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    client = make_client(price=PRICE)
    server.route(
        "POST",
        "/chat/completions",
        lambda request: Reply.json(
            chat_completion(json.loads(request.body)["messages"][0]["content"], usage=chat_usage(1, 1))
        ),
    )
    results: List[str] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        text = client.complete(f"echo {n}").text
        with lock:
            results.append(text)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(results) == sorted(f"echo {n}" for n in range(32))
    assert ledger.count == 32 and ledger.total() == Decimal("0.000003") * 32


def test_an_unusable_fallback_is_skipped_with_a_warning(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], caplog: pytest.LogCaptureFixture
) -> None:
    server.reply(Reply.json(chat_completion("primary answers")))
    with caplog.at_level(logging.WARNING, logger="minillm"):
        client = make_client(fallbacks=["xai/grok-4"])  # no XAI_API_KEY here
    assert "fallback xai/grok-4 is unusable: no API key for xai" in caplog.text
    assert client.complete("Hi").text == "primary answers"


def test_a_stream_answered_with_a_json_error_raises_from_stream_itself_and_may_fall_back(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    error = Reply.json({"error": {"message": "Upstream overloaded", "code": 503}})
    server.reply(error, error, error, path="/a/chat/completions")
    server.reply(Reply.sse(chat_stream(["ok"], usage=chat_usage(1, 1))), path="/b/chat/completions")
    with pytest.raises(minillm.ServerError, match="Upstream overloaded"):
        make_client(base_url=server.url + "/a", retry=minillm.RetryPolicy(max_attempts=1)).stream("Hi")
    backup = minillm.Client("openai/b", base_url=server.url + "/b", on_cost=ledger)
    client = make_client(base_url=server.url + "/a", retry=minillm.RetryPolicy(max_attempts=1), fallbacks=[backup])
    with client.stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "ok"
    # Each 200 answer may be billed: the two errors that came with one, and the fallback's answer.
    assert [(cost.provider, cost.model, cost.failed, cost.attempt) for cost, _ in ledger.records] == [
        ("openai", "test-model", True, 1),
        ("openai", "test-model", True, 1),
        ("openai", "b", False, 2),
    ]


def test_meta_that_no_ledger_could_keep_is_refused_at_the_call_before_anything_is_sent(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    client = make_client()
    for bad in ({"score": float("nan")}, {7: "seven"}, {"when": object()}):
        with pytest.raises(minillm.InvalidArgumentError, match="meta"):
            client.stream("Hi", meta=bad)  # type: ignore[arg-type]
        with pytest.raises(minillm.InvalidArgumentError, match="meta"):
            client.complete("Hi", meta=bad)  # type: ignore[arg-type]
    with pytest.raises(minillm.ConfigurationError, match="meta"):
        make_client(meta={"score": float("inf")})
    assert server.requests == [] and ledger.count == 0


def test_several_choices_are_kept_apart_by_index_and_the_first_is_the_default(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    def piece(index: int, content: str, finish: Optional[str] = None) -> bytes:
        chunk = chat_chunk(content=content, finish_reason=finish)
        chunk["choices"][0]["index"] = index
        return sse(chunk)

    interleaved = [piece(0, "Red "), piece(1, "Blue "), piece(1, "sky"), piece(0, "rose"), piece(1, "", "stop")]
    interleaved += [piece(0, "", "stop"), *chat_stream([], usage=chat_usage(5, 8), finish_reason=None)]
    server.reply(Reply.sse(interleaved))
    with make_client(price=PRICE).stream("Hi", extra_body={"n": 2}) as stream:
        assert "".join(stream.text_stream()) == "Red rose"  # the chunks of the first choice only
    response = stream.response
    assert response is not None and response.text == "Red rose"
    assert [(c.text, c.finish_reason) for c in response.choices] == [("Red rose", "stop"), ("Blue sky", "stop")]
    assert ledger.records[0][0].completion_tokens == 8  # the usage counts every choice

    whole = chat_completion("one", usage=chat_usage(5, 4))
    whole["choices"].append({"index": 1, "message": {"role": "assistant", "content": "two"}, "finish_reason": "length"})
    server.reply(Reply.json(whole))
    answer = make_client().complete("Hi", extra_body={"n": 2})
    assert answer.text == "one"
    assert [(c.text, c.finish_reason) for c in answer.choices] == [("one", "stop"), ("two", "length")]


# -- durations ------------------------------------------------------------------------------


def test_a_booking_says_how_long_its_attempt_took_from_sending_to_the_last_byte(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    pieces = chat_stream(["a", "b"], usage=chat_usage(3, 2))
    server.reply(Reply.sse([pieces[0], Pause(0.2), *pieces[1:]]))
    with make_client(price=PRICE).stream("Hi") as stream:
        stream.collect()
    ((cost, _),) = ledger.records
    assert cost.duration_s is not None and 0.2 <= cost.duration_s < 30


def test_a_stream_cut_short_is_timed_to_when_it_was_stopped(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    rest = Gate()
    server.reply(Reply.sse([sse(chat_chunk(content="a")), rest, *chat_stream(["b"], usage=chat_usage(3, 2))]))
    client = make_client(price=PRICE)
    began = time.monotonic()
    with client.stream("Hi") as stream:
        assert next(iter(stream)).text == "a"
    stopped = time.monotonic() - began
    rest.open()
    ((cost, _),) = ledger.records
    assert cost.cancelled and cost.duration_s is not None and 0 < cost.duration_s <= stopped
