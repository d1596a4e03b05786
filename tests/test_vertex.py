"""Vertex AI: Gemini and Claude on Google's platform -- the endpoint computed
from the project and location, a bearer token added at each send (given,
or application-default credentials refreshed through a loopback token
server), the bodies and streams Vertex expects, and bookings priced."""

from __future__ import annotations

import json
import logging
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, List

import pytest
import responses

import minillm
from minillm.providers.vertex import APPLICATION_DEFAULT, vertex_base_url
from minillm.testing import RecordedRequest, Reply, ScriptedServer, anthropic_stream, sse

TOKEN = "ya29.canary-token-5e1f7a"
PRICE = minillm.TokenPrice("1", "2")


@pytest.fixture(autouse=True)
def _fresh_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "VERTEX_ACCESS_TOKEN", "VERTEX_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    APPLICATION_DEFAULT.forget()
    yield
    APPLICATION_DEFAULT.forget()


def gemini_chunks() -> List[bytes]:
    """Vertex's shape: intermediate chunks carry only ``trafficType``, the last the counts."""
    return [
        sse(
            {
                "candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}],
                "usageMetadata": {"trafficType": "ON_DEMAND"},
                "modelVersion": "gemini-2.5-flash",
                "responseId": "resp-v",
            }
        ),
        sse(
            {
                "candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]}, "finishReason": "STOP"}],
                "usageMetadata": {
                    "promptTokenCount": 8,
                    "candidatesTokenCount": 2,
                    "thoughtsTokenCount": 5,
                    "totalTokenCount": 15,
                    "trafficType": "ON_DEMAND",
                },
                "modelVersion": "gemini-2.5-flash",
                "responseId": "resp-v",
            }
        ),
    ]


def test_gemini_on_vertex_streams_from_its_publisher_path_with_a_bearer_token(
    server: ScriptedServer, ledger: minillm.Ledger
) -> None:
    server.reply(Reply.sse(gemini_chunks()))
    client = minillm.Client("vertex/gemini-2.5-flash", api_key=TOKEN, base_url=server.url, price=PRICE, on_cost=ledger)
    with client.stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "Hello"
    (request,) = server.requests
    assert request.path == "/publishers/google/models/gemini-2.5-flash:streamGenerateContent"
    assert request.query == {"alt": ["sse"]}
    assert request.headers["authorization"] == f"Bearer {TOKEN}" and "x-goog-api-key" not in request.headers
    assert request.json()["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]
    ((cost, _),) = ledger.records
    assert (cost.prompt_tokens, cost.completion_tokens, cost.reasoning_tokens) == (8, 7, 5)
    assert (cost.usd, cost.service_tier, cost.provider) == (Decimal("0.000022"), "on_demand", "vertex")


def test_claude_on_vertex_takes_its_version_in_the_body_and_its_model_in_the_url(
    server: ScriptedServer, ledger: minillm.Ledger
) -> None:
    events = anthropic_stream(["ack"], input_tokens=10, cache_write=28804, output_tokens=4)
    server.reply(Reply.sse(events))
    price = minillm.TokenPrice("3", "15", cache_write_per_mtok="3.75")
    client = minillm.Client(
        "vertex/claude-sonnet-4-5@20250929", api_key=TOKEN, base_url=server.url, price=price, on_cost=ledger
    )
    with client.stream("Hi", max_tokens=100) as stream:
        assert "".join(stream.text_stream()) == "ack"
    (request,) = server.requests
    assert request.path == "/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
    body = request.json()
    assert body["anthropic_version"] == "vertex-2023-10-16" and "model" not in body and body["stream"] is True
    assert "anthropic-version" not in request.headers and request.headers["authorization"] == f"Bearer {TOKEN}"
    ((cost, _),) = ledger.records
    # 10 input x $3 + 28,804 five-minute writes x $3.75 + 4 output x $15, per million
    assert cost.usd == (Decimal(10 * 3) + Decimal(28804) * Decimal("3.75") + 4 * 15) / 1_000_000
    assert cost.cache_write_tokens == 28804


def test_a_whole_claude_answer_comes_from_raw_predict(server: ScriptedServer) -> None:
    message = {
        "model": "claude-opus-4-6",
        "id": "msg_vrtx_01",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "Hi there!"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 9, "output_tokens": 4},
    }
    server.reply(Reply.json(message))
    response = minillm.Client("vertex/claude-opus-4-6", api_key=TOKEN, base_url=server.url).complete("Hi")
    assert response.text == "Hi there!" and response.finish_reason == "stop"
    assert server.requests[0].path == "/publishers/anthropic/models/claude-opus-4-6:rawPredict"


@pytest.mark.parametrize(
    ("location", "host"),
    [
        ("global", "https://aiplatform.googleapis.com"),
        ("us-central1", "https://us-central1-aiplatform.googleapis.com"),
        ("eu", "https://aiplatform.eu.rep.googleapis.com"),
    ],
)
@responses.activate
def test_the_endpoint_is_computed_from_the_project_and_location(
    monkeypatch: pytest.MonkeyPatch, location: str, host: str
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", location)
    url = (
        f"{host}/v1/projects/my-project/locations/{location}/publishers/google/models/gemini-2.5-flash:generateContent"
    )
    responses.add(
        responses.POST,
        url,
        json={
            "candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
        },
    )
    assert minillm.Client("vertex/gemini-2.5-flash", api_key=TOKEN).complete("Hi").text == "ok"
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_the_location_defaults_to_global() -> None:
    assert vertex_base_url("p", "global") == "https://aiplatform.googleapis.com/v1/projects/p/locations/global"


def test_without_a_project_the_client_says_what_to_set() -> None:
    with pytest.raises(minillm.ConfigurationError, match="GOOGLE_CLOUD_PROJECT"):
        minillm.Client("vertex/gemini-2.5-flash", api_key=TOKEN)
    # a fallback can still serve when the platform is not set up
    assert minillm.Client("vertex/gemini-2.5-flash", api_key=TOKEN, fallbacks=["ollama/llama3"]) is not None


@pytest.mark.parametrize("project", ["../other", "a/b", "p?x=1"])
def test_a_project_that_would_change_the_path_is_refused(monkeypatch: pytest.MonkeyPatch, project: str) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
    with pytest.raises(minillm.ConfigurationError, match="cannot be part of a URL"):
        minillm.Client("vertex/gemini-2.5-flash", api_key=TOKEN).complete("Hi")


# -- application-default credentials, refreshed through a loopback token server ------------------


@pytest.fixture
def adc(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """Application-default credentials of a service account whose token
    endpoint is the loopback server (google-auth signs a real JWT with a
    key made here); each refresh hands out the next token, valid for a
    minute -- so google-auth refreshes it before every use."""
    pytest.importorskip("google.auth", reason="google-auth is in the test extra")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    issued: List[str] = []

    def token(request: RecordedRequest) -> Reply:
        assert b"grant-type%3Ajwt-bearer" in request.body  # a signed JWT assertion
        issued.append(f"ya29.adc-{len(issued) + 1}")
        return Reply.json({"access_token": issued[-1], "expires_in": 60, "token_type": "Bearer"})

    server.route("POST", "/token", token)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "adc.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "my-project",
                "private_key_id": "key-canary",
                "private_key": pem,
                "client_email": "minillm@my-project.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": server.url + "/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # never the metadata server
    return issued


def test_application_default_credentials_are_refreshed_and_added_at_each_send(
    server: ScriptedServer, adc: List[str], sleeps: Any, ledger: minillm.Ledger
) -> None:
    path = "/publishers/google/models/gemini-2.5-flash:streamGenerateContent"
    server.reply(
        Reply.json({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}, status=429),
        Reply.sse(gemini_chunks()),
        path=path,
    )
    client = minillm.Client(
        "vertex/gemini-2.5-flash",
        base_url=server.url,
        on_cost=ledger,
        retry=minillm.RetryPolicy(sleep=sleeps),
    )
    with client.stream("Hi") as stream:
        assert "".join(stream.text_stream()) == "Hello"
    sent = [r.headers["authorization"] for r in server.requests if r.path == path]
    # the retry carries a token fetched for it, not the first attempt's
    assert sent == ["Bearer ya29.adc-1", "Bearer ya29.adc-2"] and adc == ["ya29.adc-1", "ya29.adc-2"]
    assert ledger.count == 1


def test_failing_application_default_credentials_are_a_configuration_error_without_secrets(
    server: ScriptedServer, adc: List[str], caplog: pytest.LogCaptureFixture
) -> None:
    server.route("POST", "/token", lambda request: Reply.json({"error": "invalid_grant"}, status=400))
    client = minillm.Client("vertex/gemini-2.5-flash", base_url=server.url)
    with (
        caplog.at_level(logging.DEBUG),
        pytest.raises(minillm.ConfigurationError, match="application-default") as caught,
    ):
        client.complete("Hi")
    assert (caught.value.__cause__ is None and caught.value.__context__ is None) or "key-canary" not in str(
        caught.value.__context__
    )
    assert "key-canary" not in str(caught.value) and "key-canary" not in caplog.text
    assert [r.path for r in server.requests] == ["/token"]  # nothing was sent to Vertex


def test_without_a_token_or_google_auth_the_client_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.auth", None)  # as if minillm[vertex] were not installed
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    with pytest.raises(minillm.ConfigurationError, match=r"VERTEX_ACCESS_TOKEN.*minillm\[vertex\]"):
        minillm.Client("vertex/gemini-2.5-flash")


def test_the_token_never_shows_in_errors_reprs_or_logs(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    def echo(request: RecordedRequest) -> Reply:
        seen = request.headers.get("authorization", "")
        return Reply.json(
            {"error": {"code": 403, "message": f"denied for {seen}", "status": "PERMISSION_DENIED"}}, status=403
        )

    server.route("POST", "/publishers/google/models/gemini-2.5-flash:generateContent", echo)
    client = minillm.Client("vertex/gemini-2.5-flash", api_key=TOKEN, base_url=server.url)
    with caplog.at_level(logging.DEBUG), pytest.raises(minillm.APIError) as caught:
        client.complete("Hi")
    for text in (str(caught.value), repr(caught.value), repr(client), caplog.text):
        assert TOKEN not in text


def test_catalog_names_for_vertex_are_googles() -> None:
    from minillm.providers import adapter_class

    assert adapter_class("vertex", None, "claude-sonnet-4-5@20250929").catalog_provider == "google"
    assert adapter_class("vertex", None, "claude-sonnet-4-5@20250929").api == "messages"
    assert adapter_class("vertex", None, "gemini-2.5-pro").api == "generate"
