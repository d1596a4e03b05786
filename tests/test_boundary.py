"""An error minillm raises reaches the caller with a short traceback: the
frames of the retry machinery stay behind, the HTTP library's cause does not."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import pytest

import minillm
from minillm.testing import Reply, ScriptedServer, chat_chunk, sse
from minillm.testing.server import Drop

ROOT = Path(__file__).resolve().parents[1]

REJECTED_KEY = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}


def uncaught(script: str) -> List[str]:
    """The lines an uncaught error prints, with a scripted server on 127.0.0.1."""
    code = textwrap.dedent(
        """
        import minillm
        from minillm.testing import Reply, ScriptedServer
        REJECTED_KEY = {rejected!r}
        with ScriptedServer() as server:
        {body}
        """
    ).format(rejected=REJECTED_KEY, body=textwrap.indent(textwrap.dedent(script), "    "))
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=environment, cwd=ROOT
    )
    assert done.returncode == 1, done.stderr
    return done.stderr.strip().splitlines()


def test_an_uncaught_401_is_a_short_traceback_ending_in_the_authentication_error() -> None:
    lines = uncaught(
        """
        server.reply(Reply.json(REJECTED_KEY, status=401))
        client = minillm.Client("openai/gpt-4o-mini", api_key="sk-rejected", base_url=server.url)
        client.complete("Hi")
        """
    )
    assert len(lines) <= 12, "\n".join(lines)
    assert lines[-1].startswith("minillm.errors.AuthenticationError: openai returned HTTP 401: Incorrect API key")
    assert not any("tenacity" in line or "concurrent" in line for line in lines)
    assert not any("sk-rejected" in line for line in lines)


def test_an_error_raised_once_retries_are_spent_leaves_the_retry_machinery_behind(server: ScriptedServer) -> None:
    server.reply(*[Reply.json({"error": {"message": "busy"}}, status=503)] * 2)
    policy = minillm.RetryPolicy(max_attempts=2, initial_delay=0, jitter=0)
    client = minillm.Client("openai/m", base_url=server.url, retry=policy)
    with pytest.raises(minillm.ServerError, match="HTTP 503: busy") as caught:
        client.stream("Hi")
    assert len(server.requests) == 2
    assert [entry.name for entry in caught.traceback] == [
        "test_an_error_raised_once_retries_are_spent_leaves_the_retry_machinery_behind",
        "wrapper",
    ]
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None


def test_a_stream_that_fails_while_read_keeps_the_http_librarys_error_as_its_cause(server: ScriptedServer) -> None:
    server.reply(Reply.sse([sse(chat_chunk(content="Hel")), Drop()]))
    stream = minillm.Client("openai/m", base_url=server.url).stream("Hi")
    with pytest.raises(minillm.StreamError) as caught, stream:
        for _ in stream:
            pass
    assert caught.value.__cause__ is not None and caught.value.__suppress_context__
    frames = [entry.name for entry in caught.traceback]
    assert "drive" not in frames and frames[-1] == "__iter__"


def test_an_unreachable_server_keeps_its_cause_and_shows_no_retry_frames() -> None:
    client = minillm.Client(
        "openai/m", base_url="http://127.0.0.1:9", retry=minillm.RetryPolicy(max_attempts=2, initial_delay=0, jitter=0)
    )
    with pytest.raises(minillm.APIConnectionError) as caught:
        client.complete("Hi")
    assert caught.value.__cause__ is not None and caught.value.__suppress_context__
    assert [entry.name for entry in caught.traceback][-1] == "wrapper"


def test_a_bug_that_is_not_a_minillm_error_keeps_every_frame(server: ScriptedServer) -> None:
    def explode(attempt: int, exc: BaseException, delay: float) -> None:
        raise KeyError("a bug in the caller's hook")

    server.reply(Reply.json({"error": {"message": "busy"}}, status=503))
    client = minillm.Client("openai/m", base_url=server.url, on_retry=explode)
    with pytest.raises(KeyError) as caught:
        client.complete("Hi")
    assert "explode" in [entry.name for entry in caught.traceback]
