"""The ``minillm`` command line, run as the user runs it: in a subprocess."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

import pytest

from minillm.cli import main
from minillm.demo import DEMO_PRICE, run_demo
from minillm.testing import Hang, Reply, ScriptedServer, chat_stream, chat_usage

from .conftest import MINILLM_COMMAND

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _ledger_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where ``chat`` books unless told: this test's own ledger, not the checkout."""
    path = tmp_path / "default-costs.db"
    monkeypatch.setenv("MINILLM_LEDGER", str(path))
    return path


def environment(**extra: str) -> Dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.endswith(("_API_KEY", "_BASE_URL")) and name != "OLLAMA_HOST"
    }
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        NO_PROXY="127.0.0.1",
        no_proxy="127.0.0.1",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def run(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(
        [sys.executable, "-m", "minillm", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(**env),
    )


def start(*args: str, **env: str) -> subprocess.Popen:  # type: ignore[type-arg]
    """The command, started so that a SIGINT reaches it as Ctrl-C would."""
    return subprocess.Popen(
        [*MINILLM_COMMAND, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(**env),
    )


# -- demo -----------------------------------------------------------------------------------------


def test_the_demo_streams_an_answer_from_a_served_engine_and_settles_it_once() -> None:
    out = io.StringIO()
    ledger = run_demo(out, delay=0)
    text = out.getvalue()
    assert "minillm serve --engine ngram, on http://127.0.0.1:" in text
    answer = text.split("\n\n")[2]
    assert len(answer.split()) >= 10 and answer.rstrip().endswith((".", "!", "?"))
    assert ledger.count == 1
    cost = ledger.records[0][0]
    assert cost.usd is not None and cost.usd > 0 and cost.completion_tokens == len(answer.split())
    assert (
        f"cost:  {cost.prompt_tokens} prompt + {cost.completion_tokens} completion tokens = ${cost.usd} (resolved)"
        in (text)
    )


def test_the_demo_shows_one_exact_figure_names_its_price_and_its_toy_model_and_what_to_try_next() -> None:
    out = io.StringIO()
    ledger = run_demo(out, delay=0)
    text = out.getvalue()
    cost = ledger.records[0][0]
    assert cost.usd is not None
    figures = [word.rstrip(",") for word in text.split() if word.startswith("$")]
    # the booking's one figure, then the two rates it was priced at
    assert figures == [f"${cost.usd}", f"${DEMO_PRICE.input_per_mtok}", f"${DEMO_PRICE.output_per_mtok}"]
    assert (
        cost.usd
        == (cost.prompt_tokens * DEMO_PRICE.input_per_mtok + cost.completion_tokens * DEMO_PRICE.output_per_mtok)
        / 10**6
    )
    assert "per million input tokens" in text and "the demo's own price" in text
    assert "a toy model running in this process" in text and "no provider was called" in text
    assert "minillm chat anthropic/" in text and "minillm costs" in text


def test_python_dash_m_minillm_demo_works_end_to_end() -> None:
    result = run("demo", "--delay", "0")
    assert result.returncode == 0, result.stderr
    assert "(resolved), settled once" in result.stdout and "Next, with a real model" in result.stdout


# -- chat -----------------------------------------------------------------------------------------


def test_chat_streams_the_reply_and_prints_its_cost_on_stderr(server: ScriptedServer) -> None:
    server.reply(Reply.sse(chat_stream(["Hel", "lo"], usage=chat_usage(5, 2))))
    result = run("chat", "openai/test-model", "Hi", "--base-url", server.url, "--price", "1,2", "--max-tokens", "9")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello\n"
    assert result.stderr.strip() == "cost: 5 prompt + 2 completion tokens = $0.000009 (resolved)"
    sent = server.requests[0].json()
    assert sent["messages"] == [{"role": "user", "content": "Hi"}] and sent["max_tokens"] == 9


def test_chat_prints_a_tiny_cost_exactly_never_as_a_fake_zero(server: ScriptedServer) -> None:
    server.reply(Reply.sse(chat_stream(["ok"], usage=chat_usage(3, 2))))
    result = run("chat", "openai/test-model", "Hi", "--base-url", server.url, "--price", "0.05,0.10")
    assert result.returncode == 0, result.stderr
    # 3 x 0.05 + 2 x 0.10 per million: rounded to six places it would read $0.000000
    assert result.stderr.strip() == "cost: 3 prompt + 2 completion tokens = $0.00000035 (resolved)"


def test_chat_reads_the_prompt_from_stdin_and_takes_a_system_prompt() -> None:
    result = run("chat", "local/echo", "--system", "Be brief.", stdin="echo me please\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "echo me please\n"
    assert result.stderr.startswith("cost: 7 prompt + 3 completion tokens = cost unknown (unpriced)")


def test_ctrl_c_cancels_the_chat_stream_and_still_settles(server: ScriptedServer) -> None:
    server.reply(Reply.sse([*chat_stream(["partial"], finish_reason=None, done=False), Hang()]))
    chat = start("chat", "openai/test-model", "Hi", "--base-url", server.url)
    assert chat.stdout is not None and chat.stderr is not None
    assert chat.stdout.read(len("partial")) == "partial"
    chat.send_signal(signal.SIGINT)
    _, err = chat.communicate(timeout=30)
    assert chat.returncode == 130
    # one piece of output was seen: a lower bound, and no price to turn it into money
    assert "cost: at least 0 prompt + 1 completion tokens = cost unknown (unknown, cancelled)" in err
    assert "Traceback" not in err
    assert server.requests[0].disconnected.wait(10)


@pytest.mark.parametrize(
    ("model", "names"),
    [
        ("anthropic/claude-haiku-4-5", "ANTHROPIC_API_KEY"),
        ("gemini/gemini-2.5-flash", "GEMINI_API_KEY or GOOGLE_API_KEY"),
        ("openrouter/openai/gpt-4o-mini", "OPENROUTER_API_KEY"),
    ],
)
def test_a_missing_key_is_one_line_naming_what_to_set(model: str, names: str) -> None:
    result = run("chat", model, "Hi")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and names in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_an_unknown_provider_or_engine_is_one_clear_line() -> None:
    result = run("chat", "acme/model-1", "Hi")
    assert result.returncode == 1 and "unknown provider 'acme'; known providers:" in result.stderr
    result = run("chat", "local/nope", "Hi")
    assert result.returncode == 1 and "no engine named 'nope'" in result.stderr
    for failed in (result,):
        assert "Traceback" not in failed.stderr


def test_chat_without_a_prompt_says_so() -> None:
    result = run("chat", "local/echo", stdin="")
    assert result.returncode == 2 and "no prompt" in result.stderr


def test_a_bad_price_is_explained() -> None:
    result = run("chat", "local/echo", "Hi", "--price", "cheap")
    assert result.returncode == 1 and "--price wants two numbers" in result.stderr


# -- serve ----------------------------------------------------------------------------------------


class Served:
    """``minillm serve`` running in a subprocess: its banner, its URL, and
    -- once stopped with Ctrl-C -- its exit status and stderr."""

    def __init__(self, *args: str, **env: str) -> None:
        self.process = start("serve", "--engine", "echo", "--port", "0", *args, **env)
        assert self.process.stderr is not None
        self.banner = self.process.stderr.readline()
        self.url = self.banner.split(" on ", 1)[1].split(" ", 1)[0] if " on " in self.banner else ""
        self.returncode, self.err = 0, ""

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.process.send_signal(signal.SIGINT)
        _, self.err = self.process.communicate(timeout=30)
        self.returncode = self.process.returncode

    def chat(self, **headers: str) -> Any:
        body = json.dumps({"model": "echo", "messages": [{"role": "user", "content": "served"}]}).encode()
        request = urllib.request.Request(
            self.url + "/chat/completions", body, {"Content-Type": "application/json", **headers}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)


def test_serve_answers_until_interrupted() -> None:
    with Served() as served:
        assert "minillm: serving echo as 'echo' on http://127.0.0.1:" in served.banner
        with urllib.request.urlopen(served.url.replace("/v1", "/health"), timeout=10) as response:
            assert json.load(response)["status"] == "ok"
        assert served.chat()["choices"][0]["message"]["content"] == "served"
    assert served.returncode == 0, served.err
    assert "Traceback" not in served.err


def test_serve_requires_the_key_from_its_environment_and_says_what_it_served_when_stopped() -> None:
    with Served(MINILLM_SERVE_KEY="s3cret") as served:
        assert "requests need the API key" in served.banner, served.banner
        with pytest.raises(urllib.error.HTTPError) as refused:
            served.chat()
        assert refused.value.code == 401
        assert json.load(refused.value)["error"]["type"] == "invalid_request_error"
        refused.value.close()
        assert served.chat(Authorization="Bearer s3cret")["choices"][0]["message"]["content"] == "served"
    assert served.returncode == 0, served.err
    assert "minillm: stopped; served 2 requests (1 refused)" in served.err
    assert "s3cret" not in served.err and "Traceback" not in served.err


@pytest.mark.parametrize(("key", "warned"), [([], True), (["--api-key", "k"], False)])
def test_serving_beyond_loopback_without_a_key_warns_loudly(key: List[str], warned: bool) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: binding fails after the warning, and nothing is sent
    result = run("serve", "--engine", "echo", "--host", "192.0.2.1", "--port", "0", *key)
    assert result.returncode == 1 and "cannot serve on 192.0.2.1" in result.stderr
    assert ("WARNING: serving on 192.0.2.1, beyond this machine, with no API key" in result.stderr) is warned


def test_serve_on_a_taken_port_fails_with_one_line() -> None:
    with Served() as served:
        port = served.url.rsplit(":", 1)[1].split("/", 1)[0]
        result = run("serve", "--engine", "echo", "--port", port)
        assert result.returncode == 1 and f"cannot serve on 127.0.0.1:{port}" in result.stderr


# -- everywhere -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["--help"], *([c, "--help"] for c in ("demo", "chat", "serve", "batch", "costs")), ["costs", "report", "--help"]],
)
def test_help_is_everywhere(args: List[str]) -> None:
    result = run(*args)
    assert result.returncode == 0 and "usage: minillm" in result.stdout


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: minillm" in capsys.readouterr().out


def test_the_version_is_reported() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("minillm ")
