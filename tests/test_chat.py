"""``minillm chat`` (minillm.chat): options in any order, and a
conversation at a terminal -- driven here through a pseudo-terminal, as a
person at a keyboard drives it."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List, Union

import pytest

import minillm
from minillm.testing import Hang, Reply, ScriptedServer, chat_stream, chat_usage

from .test_cli import environment, run

pty = pytest.importorskip("pty", reason="a pseudo-terminal needs a POSIX system")

#: ``python -m minillm`` in a session of its own at the pseudo-terminal.
#: SIGINT is restored in case this run ignores it.
#:
#: The terminal is not made its controlling one: on some machines (seen in a
#: container with two devpts mounted) a process that takes a pseudo-terminal
#: as its controlling terminal now and then has nothing it writes reach the
#: other end. Ctrl-C is therefore sent as the terminal driver sends it -- a
#: SIGINT to the command's process group -- rather than typed.
AT_A_TERMINAL = (
    "import os, runpy, signal, sys; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'minillm'; runpy.run_module('minillm', run_name='__main__', alter_sys=True)"
)


class Terminal:
    """The keyboard and screen of a command run at a pseudo-terminal."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", AT_A_TERMINAL, *args],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                env=environment(TERM="dumb"),
            )
        finally:
            os.close(slave)
        self.screen = ""
        self._read_to = 0

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def interrupt(self) -> None:
        """Ctrl-C: a SIGINT to the command's process group."""
        os.killpg(self.process.pid, signal.SIGINT)

    def expect(self, text: str, timeout: float = 30) -> str:
        """Wait until ``text`` shows (after what was expected before);
        returns the screen up to and including it."""
        deadline = time.monotonic() + timeout
        while text not in self.screen[self._read_to :]:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never showed; the screen: {self.screen[self._read_to :]!r}"
            readable, _, _ = select.select([self.master], [], [], left)
            if readable:
                try:
                    data = os.read(self.master, 4096)
                except OSError:  # EIO: the command has ended and closed the terminal
                    data = b""
                assert data, f"the command ended before {text!r} showed; the screen: {self.screen[self._read_to :]!r}"
                self.screen += data.decode("utf-8", "replace")
        end = self.screen.index(text, self._read_to) + len(text)
        shown, self._read_to = self.screen[self._read_to : end], end
        return shown

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        os.close(self.master)


@pytest.fixture
def terminals() -> Iterator[List[Terminal]]:
    opened: List[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def test_options_and_the_prompt_come_in_any_order(server: ScriptedServer, tmp_path: Path) -> None:
    server.reply(*[Reply.sse(chat_stream(["ok"], usage=chat_usage(1, 1)))] * 2)
    ledger = str(tmp_path / "costs.db")  # not the default one, in the checkout
    first = run("chat", "openai/test-model", "--max-tokens", "5", "hi", "--base-url", server.url, MINILLM_LEDGER=ledger)
    second = run(
        "chat", "--base-url", server.url, "openai/test-model", "--system", "Be brief.", "hello", MINILLM_LEDGER=ledger
    )
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    sent = [request.json() for request in server.requests]
    assert sent[0]["max_tokens"] == 5 and sent[0]["messages"] == [{"role": "user", "content": "hi"}]
    assert sent[1]["messages"][-1] == {"role": "user", "content": "hello"}


def test_at_a_terminal_with_no_prompt_chat_holds_a_conversation_that_ctrl_c_and_ctrl_d_steer(
    server: ScriptedServer, tmp_path: Path, terminals: List[Terminal]
) -> None:
    server.reply(
        Reply.sse(chat_stream(["Hel", "lo"], usage=chat_usage(5, 2))),
        Reply.sse([*chat_stream(["partial"], finish_reason=None, done=False), Hang()]),  # held until stopped
        Reply.sse(chat_stream(["again"], usage=chat_usage(9, 1))),
    )
    costs = tmp_path / "costs.db"
    chat = Terminal("chat", "openai/test-model", "--base-url", server.url, "--price", "1,2", "--ledger", str(costs))
    terminals.append(chat)
    assert "Ctrl-C stops an answer, Ctrl-D quits" in chat.expect("> ")

    chat.type("Hi\n")
    assert "Hello" in chat.expect("cost: 5 prompt + 2 completion tokens = $0.000009 (resolved)")
    chat.expect("> ")

    chat.type("more\n")
    chat.expect("partial")
    chat.interrupt()
    assert "cancelled)" in chat.expect("\n> ")
    assert server.requests[1].disconnected.wait(10)

    chat.type("last\n")
    assert "again" in chat.expect("cost: 9 prompt + 1 completion tokens = $0.000011 (resolved)")
    chat.expect("> ")
    chat.type("\x04")  # Ctrl-D
    chat.expect("minillm chat: 3 answers, ")
    # the stopped answer's part is a lower bound, and so is the sum
    assert chat.expect("\n").strip() == "at least $0.000022"
    assert chat.process.wait(30) == 0

    # each prompt went with the conversation so far, the stopped answer's part included
    user, assistant = "user", "assistant"
    assert [m["content"] for m in server.requests[0].json()["messages"]] == ["Hi"]
    assert [(m["role"], m["content"]) for m in server.requests[2].json()["messages"]] == [
        (user, "Hi"),
        (assistant, "Hello"),
        (user, "more"),
        (assistant, "partial"),
        (user, "last"),
    ]
    booked = minillm.SQLiteLedger(costs)
    try:
        assert [(cost.completion_tokens, cost.cancelled) for cost, _ in booked.records] == [
            (2, False),
            (1, True),
            (1, False),
        ]
    finally:
        booked.close()


def test_ctrl_c_at_the_prompt_drops_the_line_and_the_conversation_goes_on(server: ScriptedServer) -> None:
    import argparse
    import io

    from minillm.chat import _converse

    server.reply(Reply.sse(chat_stream(["ok"], usage=chat_usage(1, 1))))
    typed: List[Union[BaseException, str]] = [KeyboardInterrupt(), "hi", EOFError()]

    def read() -> str:
        item = typed.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(system=None, max_tokens=None, temperature=None)
    with minillm.Client(
        "openai/test-model", base_url=server.url, api_key="k", price=minillm.TokenPrice(1, 2)
    ) as client:
        assert _converse(client, args, read, out, err) == 0
    assert typed == [] and out.getvalue() == "\nok\n\n"
    assert [request.json()["messages"] for request in server.requests] == [[{"role": "user", "content": "hi"}]]
    assert "1 answer" in err.getvalue()
