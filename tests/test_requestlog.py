"""The request log: one line per attempt on ``minillm.requests`` (never
one per chunk, never a key, never a prompt unless asked), and
``MINILLM_LOG``, which shows it on stderr."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable, List

import pytest

import minillm
from minillm.testing import Reply, ScriptedServer, chat_completion, chat_stream, chat_usage, openrouter_generation, sse
from minillm.testing.server import Drop, Gate

ROOT = Path(__file__).resolve().parents[1]
PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")
#: recognisable, so that any trace of it in a log is found
KEY = "sk-FAKE-KEY-0123456789abcdef"
PROMPT = "the secret family recipe for plum dumplings"
PIECES = [f"t{i} " for i in range(40)]


def lines(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [record.getMessage() for record in caplog.records if record.name == "minillm.requests"]


@pytest.fixture
def everything(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="minillm")
    return caplog


def test_a_streamed_answer_of_many_chunks_is_one_line_with_what_it_cost(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], everything: pytest.LogCaptureFixture
) -> None:
    server.reply(Reply.sse(chat_stream(PIECES, usage=chat_usage(3, 40))))
    with make_client(price=PRICE, api_key=KEY).stream(PROMPT) as stream:
        assert len(list(stream)) > len(PIECES)
    (line,) = lines(everything)
    assert line.startswith(f"POST {server.url}/chat/completions 200 attempt 1 ")
    assert line.endswith("s openai/test-model 3 in 40 out usd=0.000083 resolved")


def test_no_line_of_any_minillm_logger_carries_the_key_or_the_prompt(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], everything: pytest.LogCaptureFixture
) -> None:
    server.reply(Reply(status=429, headers=(("Retry-After", "0"),), body=(b'{"error": {"message": "slow down"}}',)))
    server.reply(Reply.json(chat_completion("a", usage=chat_usage(3, 1))))
    make_client(price=PRICE, api_key=KEY).complete(PROMPT)
    assert len(lines(everything)) == 2
    assert KEY not in everything.text and KEY[:12] not in everything.text
    assert PROMPT not in everything.text


def test_a_retried_request_logs_each_attempt_the_refused_one_booking_nothing(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], everything: pytest.LogCaptureFixture
) -> None:
    server.reply(Reply(status=503, body=(b'{"error": {"message": "overloaded"}}',)))
    server.reply(Reply.json(chat_completion("a", usage=chat_usage(3, 1))))
    make_client(price=PRICE).complete("Hi")
    refused, served = lines(everything)
    assert " 503 attempt 1 " in refused and refused.endswith("openai/test-model booked nothing")
    assert " 200 attempt 2 " in served and served.endswith("3 in 1 out usd=0.000005 resolved")


def test_an_attempt_that_failed_mid_body_says_so_with_its_lower_bound(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], everything: pytest.LogCaptureFixture
) -> None:
    server.reply(Reply.sse([*chat_stream(["a", "b"], usage=None, finish_reason=None, done=False), Drop()]))
    with pytest.raises(minillm.StreamError), make_client(price=PRICE).stream("Hi") as stream:
        stream.collect()
    (line,) = lines(everything)
    assert " 200 attempt 1 " in line and line.endswith("0 in 2 out usd>=0.000004 partial failed")


def test_an_answer_that_never_came_has_no_status(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], everything: pytest.LogCaptureFixture
) -> None:
    server.reply(*[Reply().held(Drop())] * 3)
    with pytest.raises(minillm.APIConnectionError):
        make_client(price=PRICE).stream("Hi")
    logged = lines(everything)
    assert len(logged) == 3
    assert all(" no-response attempt " in line and line.endswith("usd=? unknown failed") for line in logged)


def test_a_looked_up_cost_is_logged_once_when_the_look_up_books_it(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], everything: pytest.LogCaptureFixture
) -> None:
    rest = Gate()
    server.reply(Reply.sse([sse({"id": "gen-9", "choices": [{"delta": {"content": "a"}}]}), rest, Drop()]))
    record = Reply.json(openrouter_generation("gen-9", total_cost=0.0042))
    server.route("GET", "/generation", lambda request: record)
    client = make_client("openrouter/some/model")
    with client.stream("Hi") as stream:
        next(iter(stream))
    rest.open()
    assert client.flush(timeout=10)
    (line,) = lines(everything)
    assert line.endswith("usd=0.0042 resolved (looked up) cancelled")


def test_the_line_is_made_only_when_someone_listens(
    server: ScriptedServer, make_client: Callable[..., minillm.Client], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="minillm")
    server.reply(Reply.json(chat_completion("a", usage=chat_usage(3, 1))))
    make_client(price=PRICE).complete("Hi")
    assert lines(caplog) == []


# -- MINILLM_LOG, read by the first client of a fresh interpreter ---------------------------------------

SCRIPT = """
    import sys
    import minillm

    assert [type(h).__name__ for h in __import__("logging").getLogger("minillm").handlers] == ["NullHandler"]
    client = minillm.Client(
        "openai/test-model",
        api_key=sys.argv[2],
        base_url=sys.argv[1],
        price=minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2"),
        retry=minillm.RetryPolicy(initial_delay=0.0, jitter=0.0),
    )
    with client.stream(sys.argv[3]) as stream:
        print(stream.collect().text.count("t"))
"""


def run(server: ScriptedServer, **env: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MINILLM_LOG")}
    environment.update(env, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), server.url, KEY, PROMPT],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )


def test_minillm_log_info_shows_one_line_per_attempt_on_stderr_and_never_the_key(server: ScriptedServer) -> None:
    server.reply(Reply(status=429, headers=(("Retry-After", "0"),), body=(b"{}",)))
    server.reply(Reply.sse(chat_stream(PIECES, usage=chat_usage(3, 40))))
    done = run(server, MINILLM_LOG="info")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "40"
    requests = [line for line in done.stderr.splitlines() if " minillm.requests INFO " in line]
    assert len(requests) == 2
    assert " 429 attempt 1 " in requests[0] and " 200 attempt 2 " in requests[1]
    assert "minillm.client WARNING retrying openai request" in done.stderr  # minillm's warnings too
    assert " DEBUG " not in done.stderr
    assert KEY not in done.stderr and PROMPT not in done.stderr


def test_minillm_log_debug_adds_the_lines_that_already_exist(server: ScriptedServer) -> None:
    server.reply(Reply.sse(chat_stream(PIECES, usage=chat_usage(3, 40))))
    done = run(server, MINILLM_LOG="debug")
    assert done.returncode == 0, done.stderr
    assert len([line for line in done.stderr.splitlines() if " minillm.requests INFO " in line]) == 1
    assert " minillm.accounting DEBUG booked resolved openai/test-model attempt 1 " in done.stderr
    assert KEY not in done.stderr and PROMPT not in done.stderr


def test_prompts_are_logged_only_when_asked(server: ScriptedServer) -> None:
    server.reply(Reply.sse(chat_stream(["a"], usage=chat_usage(3, 1))))
    done = run(server, MINILLM_LOG="info", MINILLM_LOG_PROMPTS="1")
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if " minillm.requests INFO " in line]
    assert line.endswith(f'prompt=[{{"role": "user", "content": "{PROMPT}"}}]')
    assert KEY not in done.stderr


def test_without_minillm_log_nothing_is_configured_and_nothing_printed(server: ScriptedServer) -> None:
    server.reply(Reply.sse(chat_stream(["a"], usage=chat_usage(3, 1))))
    done = run(server)
    assert done.returncode == 0 and done.stderr == ""


def test_an_unknown_minillm_log_level_is_a_configuration_error(server: ScriptedServer) -> None:
    done = run(server, MINILLM_LOG="verbose")
    assert done.returncode == 1
    assert "ConfigurationError: MINILLM_LOG must be 'debug' or 'info' (or unset), not 'verbose'" in done.stderr
