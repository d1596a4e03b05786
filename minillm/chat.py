"""``minillm chat``: one reply, or a conversation at a terminal.

With a prompt (an argument, or stdin that is not a terminal) it streams one
reply and prints its cost. With no prompt at a terminal it holds a
conversation: each prompt is sent with the turns before it, Ctrl-C stops
the answer being streamed (not the conversation), Ctrl-D ends it. Every
answer -- a stopped one too -- is settled into the ledger and its cost is
printed on stderr as it is booked.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, TextIO, Tuple

from .errors import MiniLLMError
from .models import CostInfo, Resolution
from .money import cost_summary, exact_sum, usd_text

if TYPE_CHECKING:  # pragma: no cover
    from .accounting.pricing import TokenPrice
    from .client import Client

__all__ = ["run_chat"]

#: The exit status of a reply stopped with Ctrl-C (128 + SIGINT).
INTERRUPTED = 130
#: What the conversation shows when it waits for the next prompt.
PROMPT = "> "

Message = Dict[str, Any]


def run_chat(
    args: argparse.Namespace,
    price: Optional[TokenPrice],
    ledger_target: str,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """Run ``minillm chat`` as parsed into ``args``; returns the exit status.

    :param price: the ``--price`` given, if any.
    :param ledger_target: where the costs are booked (a file or a URL).
    """
    from .accounting.ledgers import BaseLedger, open_ledger
    from .client import Client

    conversation = args.prompt is None and stdin.isatty()
    prompt = "" if conversation else args.prompt if args.prompt is not None else stdin.read().strip()
    if not conversation and not prompt.strip():
        print("minillm: no prompt: give one as an argument or on stdin", file=stderr)
        return 2
    books: List[BaseLedger] = []

    def book(cost: CostInfo, meta: Dict[str, Any]) -> None:
        books[0].record(cost, meta)

    # The client first: a model it cannot reach (no key, say) leaves no
    # ledger file behind.
    with Client(args.model, base_url=args.base_url, price=price, on_cost=book) as client:
        ledger = open_ledger(ledger_target)
        books.append(ledger)
        try:
            if conversation:
                print(
                    f"minillm chat with {args.model} -- Ctrl-C stops an answer, Ctrl-D quits; "
                    f"every answer is booked in {ledger_target}",
                    file=stderr,
                )
                return _converse(client, args, _read_line, stdout, stderr)
            _, cost, interrupted = _answer(client, [{"role": "user", "content": prompt}], args, stdout)
        finally:
            ledger.close()
    print(f"cost: {cost_summary(cost)}" if cost is not None else "cost: not settled yet", file=stderr)
    return INTERRUPTED if interrupted else 0


def _answer(
    client: Client, messages: List[Message], args: argparse.Namespace, out: TextIO
) -> Tuple[str, Optional[CostInfo], bool]:
    """Stream one answer to ``out``: its text, its cost once settled, and
    whether Ctrl-C stopped it (leaving the stream's block cancelled and
    settled it)."""
    pieces: List[str] = []
    interrupted = False
    stream = client.stream(messages, system=args.system, max_tokens=args.max_tokens, temperature=args.temperature)
    try:
        with stream:
            for text in stream.text_stream():
                pieces.append(text)
                out.write(text)
                out.flush()
    except KeyboardInterrupt:
        interrupted = True
    out.write("\n")
    out.flush()
    client.flush(timeout=10)  # a cost being looked up has a moment to arrive
    return "".join(pieces), stream.cost, interrupted


def _read_line() -> str:
    """The next prompt from the terminal, with line editing where the
    platform has it; EOFError on Ctrl-D."""
    try:
        import readline  # noqa: F401  -- input() edits lines once it is loaded
    except ImportError:  # pragma: no cover - Windows
        pass
    return input(PROMPT)


def _converse(client: Client, args: argparse.Namespace, read: Callable[[], str], stdout: TextIO, stderr: TextIO) -> int:
    """The conversation, until Ctrl-D; then what it cost in all."""
    history: List[Message] = []
    costs: List[Optional[CostInfo]] = []
    while True:
        try:
            line = read()
        except EOFError:  # Ctrl-D
            stdout.write("\n")
            break
        except KeyboardInterrupt:  # Ctrl-C at the prompt drops the line, as a shell does
            stdout.write("\n")
            continue
        if not line.strip():
            continue
        history.append({"role": "user", "content": line})
        text, cost = "", None
        try:
            text, cost, _ = _answer(client, history, args, stdout)
        except KeyboardInterrupt:  # before the answer began: the call settled what it had sent
            stdout.write("\n")
        except MiniLLMError as exc:  # one failed turn does not end the conversation
            print(f"minillm: {exc}", file=stderr)
        # What was shown stays in the conversation, a stopped answer's part
        # too; a prompt that got no answer at all is taken back.
        if text:
            history.append({"role": "assistant", "content": text})
        else:
            history.pop()
        if cost is not None:
            costs.append(cost)
            print(f"cost: {cost_summary(cost)}", file=stderr)
    print(f"minillm chat: {_session(costs)}", file=stderr)
    return 0


def _session(costs: List[Optional[CostInfo]]) -> str:
    """What the conversation cost in all: known money summed exactly, and
    a lower bound when any answer's money is not known exactly."""
    known = [cost.usd for cost in costs if cost is not None and cost.usd is not None]
    total = exact_sum(known) if known else None
    exact = all(cost is not None and cost.resolution is Resolution.RESOLVED for cost in costs)
    answers = f"{len(costs)} answer{'s' if len(costs) != 1 else ''}"
    return f"{answers}, {usd_text(total, lower_bound=not exact)}" if costs else "no answers, nothing spent"
