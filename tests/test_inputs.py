"""Images and documents as input: each provider's translation of OpenAI's
``image_url`` and ``file`` parts, asserted on the body the loopback server
received; what a provider cannot take is refused before anything is sent
(and books nothing); image tokens where the provider reports them."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import pytest

import minillm
from minillm.testing import (
    Reply,
    ScriptedServer,
    anthropic_stream,
    bedrock_converse,
    chat_stream,
    gemini_stream,
    ollama_stream,
    responses_stream,
    sse,
)

PNG = "data:image/png;base64,iVBORw0KGgo="
PDF = "data:application/pdf;base64,JVBERi0xLjQ="
IMAGE_URL = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
IMAGE_DATA = {"type": "image_url", "image_url": {"url": PNG}}
PDF_FILE = {"type": "file", "file": {"file_data": PDF, "filename": "report 2026.pdf"}}


def user(*parts: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "Describe these."}, *parts]}]


def sent(server: ScriptedServer, client: minillm.Client, messages: List[Dict[str, Any]]) -> Any:
    with client.stream(messages) as stream:
        list(stream)
    return server.requests[-1].json()


def test_chat_completions_sends_image_and_file_parts_as_they_are(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.sse(chat_stream(["ok"])))
    messages = user(IMAGE_URL, IMAGE_DATA, PDF_FILE)
    assert sent(server, make_client("openai/gpt-test"), messages)["messages"] == messages


def test_the_responses_api_gets_input_image_and_input_file_parts(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.sse(responses_stream(["ok"])))
    uploaded = {"type": "file", "file": {"file_id": "file-abc"}}
    linked = {"type": "input_file", "file_url": "https://example.com/a.pdf"}
    body = sent(server, make_client("openai/gpt-test", api="responses"), user(IMAGE_URL, PDF_FILE, uploaded, linked))
    assert body["input"][0]["content"][1:] == [
        {"type": "input_image", "image_url": "https://example.com/cat.png"},
        {"type": "input_file", "filename": "report 2026.pdf", "file_data": PDF},
        {"type": "input_file", "file_id": "file-abc"},
        {"type": "input_file", "file_url": "https://example.com/a.pdf"},
    ]


def test_anthropic_gets_image_and_document_blocks(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.sse(anthropic_stream(["ok"])))
    text = {"type": "file", "file": {"file_data": "data:text/plain;base64,aGVsbG8=", "filename": "a.txt"}}
    linked = {"type": "file", "file": {"file_url": "https://example.com/a.pdf"}}
    body = sent(server, make_client("anthropic/claude-test", api_key="k"), user(IMAGE_DATA, PDF_FILE, text, linked))
    assert body["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "hello"}},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
    ]


def test_gemini_gets_inline_data_and_file_data_parts(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.sse(gemini_stream(["ok"])))
    stored = {"type": "file", "file": {"file_url": "https://generativelanguage.googleapis.com/v1beta/files/abc"}}
    body = sent(server, make_client("gemini/gemini-test", api_key="k"), user(IMAGE_URL, IMAGE_DATA, PDF_FILE, stored))
    assert body["contents"][0]["parts"][1:] == [
        {"fileData": {"fileUri": "https://example.com/cat.png"}},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0xLjQ="}},
        {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}},
    ]


def test_bedrock_gets_image_and_named_document_blocks(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.json(bedrock_converse("ok")))
    in_s3 = {"type": "file", "file": {"file_url": "s3://bucket/notes.md"}}
    client = make_client("bedrock/anthropic.claude-test", api_key="bedrock-key")
    client.complete(user(IMAGE_DATA, PDF_FILE, in_s3))
    assert server.requests[0].json()["messages"][0]["content"][1:] == [
        {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
        {"document": {"format": "pdf", "name": "report 2026", "source": {"bytes": "JVBERi0xLjQ="}}},
        {"document": {"format": "md", "name": "document", "source": {"s3Location": {"uri": "s3://bucket/notes.md"}}}},
    ]


def test_ollama_gets_inline_images_beside_the_text(
    server: ScriptedServer, make_client: Callable[..., minillm.Client]
) -> None:
    server.reply(Reply.ndjson(ollama_stream(["ok"])))
    body = sent(server, make_client("ollama/llava"), user(IMAGE_DATA))
    assert body["messages"][0] == {"role": "user", "content": "Describe these.", "images": ["iVBORw0KGgo="]}


@pytest.mark.parametrize(
    ("model", "part", "says"),
    [
        ("ollama/llava", IMAGE_URL, "data: URLs"),
        ("ollama/llava", PDF_FILE, "not files"),
        ("anthropic/claude-test", {"type": "file", "file": {"file_id": "file-abc"}}, "Files API"),
        ("anthropic/claude-test", {"type": "file", "file": {"file_data": "data:text/csv;base64,YSxi"}}, "text/csv"),
        ("gemini/gemini-test", {"type": "file", "file": {"file_id": "file-abc"}}, "file_id"),
        ("bedrock/anthropic.claude-test", IMAGE_URL, "not web URLs"),
        (
            "bedrock/anthropic.claude-test",
            {"type": "file", "file": {"file_data": "data:image/svg;base64,PHN2Zz4="}},
            "svg",
        ),
        ("openai/gpt-test", {"type": "file", "file": {"file_data": "not a data URL"}}, "data URL"),
        ("openai/gpt-test", {"type": "file", "file": {"filename": "a.pdf"}}, "file_data"),
    ],
)
def test_what_a_provider_cannot_take_is_refused_before_sending(
    server: ScriptedServer,
    make_client: Callable[..., minillm.Client],
    ledger: minillm.Ledger,
    model: str,
    part: Dict[str, Any],
    says: str,
) -> None:
    client = make_client(model, api_key="k", api="responses" if model.startswith("openai/") else None)
    with pytest.raises(minillm.InvalidArgumentError, match=says):
        client.complete(user(part))
    assert server.requests == [] and ledger.count == 0


def test_gemini_reports_the_prompts_image_tokens(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], ledger: minillm.Ledger
) -> None:
    usage = {
        "promptTokenCount": 268,
        "candidatesTokenCount": 2,
        "totalTokenCount": 270,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10}, {"modality": "IMAGE", "tokenCount": 258}],
    }
    chunk = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "A cat."}]}, "finishReason": "STOP"}],
        "usageMetadata": usage,
        "responseId": "r1",
    }
    server.reply(Reply.sse([sse(chunk)]))
    with make_client("gemini/gemini-test", api_key="k").stream(user(IMAGE_DATA)) as stream:
        list(stream)
    assert stream.response is not None and stream.response.usage is not None
    assert (stream.response.usage.prompt_tokens, stream.response.usage.image_tokens) == (268, 258)
