"""Runs every ``.. code-block:: python`` of README.rst as written, in order
and in one namespace, against a scripted loopback server that answers as
each provider would -- every provider's base URL points at it.

    python -m tests.readme_examples WORKDIR

Run in a process of its own (it sets the environment and configures
Django). Prints one JSON line: how many blocks ran, and the requests the
server got. The names a reader supplies (``send_to_browser``, ...) are
defined here, and nothing else is.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, List

from minillm.testing import (
    RecordedRequest,
    Reply,
    ScriptedServer,
    chat_completion,
    chat_stream,
    chat_usage,
    openrouter_generation,
)

README = Path(__file__).resolve().parents[1] / "README.rst"

#: What the README's reader brings: their own functions, named in its examples.
SUPPLIED: Dict[str, Any] = {
    "send_to_browser": lambda piece: None,
    "looks_good": lambda response: bool(response.text),
    "my_view": lambda client: "".join(client.stream("Hi").text_stream()),
}


def python_blocks(text: str) -> List[str]:
    """The code of every ``.. code-block:: python`` directive, dedented."""
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: python\n\n((?:(?: {4}.*)?\n)+)", text, re.MULTILINE):
        lines = [line[4:] for line in match.group(1).splitlines()]
        blocks.append("\n".join(lines).strip() + "\n")
    return blocks


def chat(request: RecordedRequest) -> Reply:
    body = request.json()
    # OpenRouter's own figure, as the README's first example prints it
    usage = chat_usage(12, 5, cost=0.000412)
    if body.get("stream"):
        return Reply.sse(chat_stream(["Hel", "lo"], id="gen-readme", usage=usage))
    last = body["messages"][-1]
    if body.get("tools") and last.get("role") != "tool":
        name = body["tools"][0]["function"]["name"]
        call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": '{"city": "Paris"}'}}
        return Reply.json(
            chat_completion("", id="gen-readme", usage=usage, tool_calls=[call], finish_reason="tool_calls")
        )
    return Reply.json(chat_completion("Hello", id="gen-readme", usage=usage))


def configure_django() -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="minillm-readme",
        INSTALLED_APPS=["django.contrib.contenttypes", "minillm.contrib.django"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()


def main(workdir: str) -> None:
    """Run the README's examples in ``workdir`` (they write a ledger file)."""
    os.chdir(workdir)
    configure_django()
    with ScriptedServer() as server:
        server.route("POST", "/chat/completions", chat)
        server.route("GET", "/models", lambda request: Reply.json({"data": [{"id": "anthropic/claude-haiku-4.5"}]}))
        server.route(
            "GET", "/generation", lambda request: Reply.json(openrouter_generation("gen-readme", total_cost=0.0000412))
        )
        for variable in ("OPENAI", "OPENROUTER", "XAI", "ANTHROPIC", "GEMINI", "BEDROCK"):
            os.environ[f"{variable}_BASE_URL"] = server.url
            os.environ[f"{variable}_API_KEY"] = "sk-readme"
        os.environ.update(OLLAMA_HOST=server.url, AWS_REGION="us-east-1", AWS_BEARER_TOKEN_BEDROCK="readme")
        namespace: Dict[str, Any] = {"__name__": "readme", **SUPPLIED}
        blocks = python_blocks(README.read_text("utf-8"))
        for number, code in enumerate(blocks, 1):
            exec(compile(code, f"README.rst, python block {number}", "exec"), namespace)
        for name, value in list(namespace.items()):
            if name.startswith("test_") and callable(value):
                value()  # a test the README shows how to write: it passes
        namespace["client"].flush(timeout=10)
        requests = [f"{request.method} {request.path}" for request in server.requests]
    print(json.dumps({"blocks": len(blocks), "requests": requests}))


if __name__ == "__main__":
    main(sys.argv[1])
