"""The ``minillm`` command line (also ``python -m minillm``).

``minillm demo``    stream a priced answer from a local server (no key, no network)
``minillm chat``    stream a reply from any model to the terminal, with its cost --
                    or, at a terminal with no prompt, hold a conversation
``minillm serve``   expose an engine as an OpenAI-compatible server
``minillm batch``   run a JSONL file of prompts, resumable, with a budget --
                    as real-time requests, or as a provider batch at about half price
``minillm costs``   what was spent, from a ledger (see :mod:`minillm.reports`);
                    ``costs reconcile`` sets it beside a provider's own account

A configuration problem (a missing key, an unknown provider) is one line
naming what to set, and a non-zero exit -- never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Sequence, Tuple

from ._version import __version__
from .errors import MiniLLMError

if TYPE_CHECKING:  # pragma: no cover - the command imports what it runs, when it runs it
    from .accounting.budget import Budget
    from .batch import BatchItem, BatchResult, Journal
    from .client import Client

__all__ = ["main"]

#: The exit status of a run stopped with Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130
#: Where ``chat`` and ``batch`` book and ``costs`` reads, unless told otherwise.
LEDGER_ENV = "MINILLM_LEDGER"
DEFAULT_LEDGER = "minillm-costs.db"
#: The key ``serve`` requires when ``--api-key`` is not given.
SERVE_KEY_ENV = "MINILLM_SERVE_KEY"


class _AnyOrderParser(argparse.ArgumentParser):
    """A command whose options and arguments come in any order:
    ``chat MODEL --max-tokens 5 "hi"`` as well as ``chat MODEL "hi"
    --max-tokens 5``. A command with subcommands of its own (``costs``)
    parses as argparse does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mixing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Optional[Sequence[str]] = None, namespace: Optional[argparse.Namespace] = None
    ) -> Tuple[argparse.Namespace, List[str]]:
        # parse_known_intermixed_args calls back here (before Python 3.12): that call parses as usual.
        if self._mixing or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self._mixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minillm",
        description="A synchronous LLM SDK whose costs add up.",
    )
    parser.add_argument("--version", action="version", version=f"minillm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_AnyOrderParser)

    demo = commands.add_parser(
        "demo",
        help="stream a tracked, priced answer from a local server (no key, no network)",
        description="Start minillm serve with the ngram engine on a free loopback port, stream an answer "
        "from it through the real HTTP path, and settle its cost into a ledger.",
    )
    demo.add_argument("--delay", type=float, default=0.03, help="seconds between streamed tokens (default 0.03)")

    ledger_help = f"a SQLite file or a PostgreSQL URL (default: ${LEDGER_ENV}, else {DEFAULT_LEDGER})"
    chat = commands.add_parser(
        "chat",
        help="stream a reply from a model to the terminal, or hold a conversation",
        description="Stream a reply from MODEL ('provider/model-name', e.g. local/ngram or "
        "anthropic/claude-haiku-4-5), print its cost on stderr and book it in the ledger, where 'minillm costs' "
        "finds it. Ctrl-C stops the reply and still settles it. With no PROMPT at a terminal: a conversation, "
        "each prompt sent with the turns before it and each answer's cost shown and booked; Ctrl-C stops an "
        "answer, Ctrl-D quits. Options and PROMPT come in any order.",
    )
    chat.add_argument("model", help="'provider/model-name'")
    chat.add_argument(
        "prompt", nargs="?", help="the prompt (when omitted: read from stdin, or a conversation at a terminal)"
    )
    chat.add_argument("--system", help="a system prompt")
    chat.add_argument("--max-tokens", type=int, help="the most tokens to generate")
    chat.add_argument("--temperature", type=float, help="sampling temperature")
    chat.add_argument("--base-url", help="the API root (default: the provider's, or its *_BASE_URL variable)")
    chat.add_argument(
        "--price",
        metavar="IN,OUT",
        help="USD per million input and output tokens, for providers that send no cost (e.g. 0.80,4.00)",
    )
    chat.add_argument("--ledger", help=ledger_help)

    serve = commands.add_parser(
        "serve",
        help="expose an engine as an OpenAI-compatible server",
        description="Serve an engine over the OpenAI Chat Completions protocol: POST /v1/chat/completions, "
        "GET /v1/models, GET /health. Request fields the engine cannot honour (n > 1, logprobs, top_p, ...) are "
        "refused with a 400 naming the field, never ignored.",
    )
    serve.add_argument("--engine", required=True, help="echo, ngram, or 'package.module:factory' for your own engine")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="the port (default 8000; 0 picks a free one)")
    serve.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"require 'Authorization: Bearer KEY' on every request but /health (default: ${SERVE_KEY_ENV})",
    )

    batch = commands.add_parser(
        "batch",
        help="run a JSONL file of prompts through a model",
        description="Each input line is a prompt string or an object with 'prompt' (and 'id', 'system', "
        "'max_tokens', 'temperature', 'meta'). Results are written in input order; every cost goes to the "
        "ledger once. A journal records finished items, so running the same command again after a crash "
        "sends (and pays for) only what was not finished.",
    )
    batch.add_argument("input", help="the prompts, one JSON value per line")
    batch.add_argument("-o", "--output", required=True, help="where the results go (JSONL, in input order)")
    batch.add_argument("--model", required=True, help="'provider/model-name'")
    batch.add_argument("--workers", type=int, default=8, help="requests in flight at once (default 8)")
    batch.add_argument("--attempts", type=int, default=2, help="tries per item (default 2)")
    batch.add_argument("--journal", help="the journal file (default: OUTPUT.journal)")
    batch.add_argument("--ledger", help=ledger_help)
    batch.add_argument(
        "--budget",
        metavar="USD",
        help="the most this job may spend, reruns included (its bookings carry meta batch_job=INPUT's path)",
    )
    batch.add_argument(
        "--price",
        metavar="IN,OUT[,BATCH]",
        help="USD per million input and output tokens, and what a provider batch is billed at as a multiple of "
        "them (0.5 for OpenAI and Anthropic; without it, the full price)",
    )
    batch.add_argument("--base-url", help="the API root")
    batch.add_argument("--max-tokens", type=int, help="the most tokens per answer (items may set their own)")
    batch.add_argument("--system", help="a system prompt for every item that has none")
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    batch.add_argument(
        "--provider-batch",
        action="store_true",
        help="send the prompts as one provider batch (OpenAI, Anthropic) at its batch rate and wait for it; "
        "run the same command again to resume it after a crash or Ctrl-C",
    )
    batch.add_argument(
        "--poll", type=float, default=30.0, metavar="SECONDS", help="seconds between polls of a provider batch (30)"
    )

    from .reports.command import add_costs_command

    add_costs_command(commands, ledger_help)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(delay=max(args.delay, 0.0))
            return 0
        if args.command == "chat":
            return _chat(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "batch":
            return _batch(args)
        if args.command == "costs":
            return int(args.costs_run(args))
        parser.print_help()
        return 2
    except MiniLLMError as exc:
        print(f"minillm: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return INTERRUPTED


def _price(text: Optional[str]) -> Optional[object]:
    if text is None:
        return None
    from .accounting.pricing import TokenPrice
    from .errors import ConfigurationError

    parts = text.split(",")
    try:
        if len(parts) not in (2, 3):
            raise InvalidOperation
        tiers = {"batch": Decimal(parts[2])} if len(parts) == 3 else None
        return TokenPrice(input_per_mtok=Decimal(parts[0]), output_per_mtok=Decimal(parts[1]), tiers=tiers)
    except (InvalidOperation, ValueError):
        raise ConfigurationError(
            f"--price wants two numbers, IN,OUT (like 0.80,4.00) -- and for a provider batch its multiplier, "
            f"IN,OUT,BATCH (like 0.80,4.00,0.5) -- not {text!r}"
        ) from None


def _chat(args: argparse.Namespace) -> int:
    from .accounting.pricing import TokenPrice
    from .chat import run_chat

    price = _price(args.price)
    assert price is None or isinstance(price, TokenPrice)
    return run_chat(args, price, ledger_target(args.ledger), sys.stdin, sys.stdout, sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    from .engines.registry import get_engine
    from .serve.server import EngineServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    key = args.api_key or os.environ.get(SERVE_KEY_ENV) or None
    if key is None and not _loopback(args.host):
        print(
            f"minillm: WARNING: serving on {args.host}, beyond this machine, with no API key: anyone who can "
            f"reach it can use it. Give one with --api-key or ${SERVE_KEY_ENV}.",
            file=sys.stderr,
        )

    def ready(server: EngineServer) -> None:
        config = server.app.engine.config
        model = config.model if config is not None else args.engine
        guarded = "; requests need the API key" if key is not None else ""
        print(
            f"minillm: serving {args.engine} as {model!r} on {server.url}/v1 (Ctrl-C stops{guarded})", file=sys.stderr
        )

    server = EngineServer(get_engine(args.engine), host=args.host, port=args.port, api_key=key)
    try:
        server.serve_forever(on_ready=ready)
    except KeyboardInterrupt:
        refused = f" ({server.refused} refused)" if server.refused else ""
        plural = "" if server.requests == 1 else "s"
        print(f"minillm: stopped; served {server.requests} request{plural}{refused}", file=sys.stderr)
    except OSError as exc:  # the port is taken, say
        print(f"minillm: cannot serve on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve to anything
        return False


def ledger_target(given: Optional[str]) -> str:
    """The ledger a command uses: the one it was given, else ``$MINILLM_LEDGER``,
    else ``minillm-costs.db`` in the working directory."""
    return given or os.environ.get(LEDGER_ENV) or DEFAULT_LEDGER


def _ledger(target: Optional[str]) -> object:
    from .accounting.ledgers import open_ledger

    return open_ledger(ledger_target(target))


def _batch(args: argparse.Namespace) -> int:
    from . import batch
    from .accounting.budget import Budget
    from .accounting.ledgers import BaseLedger
    from .accounting.pricing import TokenPrice
    from .batch.inputs import read_items
    from .client import Client
    from .errors import InvalidArgumentError
    from .money import usd_text

    try:
        items = read_items(args.input, system=args.system, max_tokens=args.max_tokens)
    except InvalidArgumentError as exc:
        print(f"minillm batch: {exc}", file=sys.stderr)
        return 2
    ledger = _ledger(args.ledger)
    assert isinstance(ledger, BaseLedger)
    price = _price(args.price)
    assert price is None or isinstance(price, TokenPrice)
    # The job is its input file: a rerun is the same job, with the same
    # journal entries and the same budget (what it spent before counts).
    job = os.path.abspath(args.input)
    budget = Budget(ledger, args.budget, key="batch_job") if args.budget is not None else None
    journal = batch.Journal(args.journal or args.output + ".journal", job=job)
    interrupted = False
    results: Optional[List[BatchResult]] = None
    try:
        with Client(args.model, base_url=args.base_url, price=price, on_cost=ledger, meta={"batch_job": job}) as client:
            if args.provider_batch:
                provided = _provider_batch(args, client, items, journal, budget)
                if provided is None:
                    journal.close()
                    ledger.close()
                    return INTERRUPTED
                results = provided
            else:
                try:
                    results = batch.run(
                        client,
                        items,
                        workers=args.workers,
                        budget=budget,
                        journal=journal,
                        attempts=args.attempts,
                        progress=not args.no_progress,
                    )
                except batch.Interrupted as stopped:
                    # Ctrl-C: nothing more is sent; what finished is written out,
                    # and the journal lets the same command carry on.
                    results, interrupted = stopped.results, True
                client.flush(timeout=30)
    except KeyboardInterrupt:
        if results is None:
            raise
        # Ctrl-C (a second one, perhaps) while the last bookings were on
        # their way: they are waited for no longer, but the results are kept.
        interrupted = True
    with _ctrl_c_held() as pressed:
        journal.close()
        partial = args.output + ".partial"
        with open(partial, "w", encoding="utf-8") as out:
            for result in results:
                out.write(json.dumps(result.to_dict(), default=str) + "\n")
        os.replace(partial, args.output)  # a crash never leaves half a file
        summary = batch.summarize(results)
        unknown = f" ({summary['unknown']} with unknown cost)" if summary["unknown"] else ""
        stopped_early = f", {summary['cancelled']} not finished (run again to resume)" if summary["cancelled"] else ""
        spent = ledger.totals_by("batch_job").get(job)
        print(
            f"minillm batch: {summary['items']} items, {summary['done']} done "
            f"({summary['from_journal']} from the journal), {summary['failed']} failed{stopped_early}; "
            f"{summary['tokens']:,} tokens; {usd_text(summary['usd'])}{unknown}"
            + (f"; the job has spent {usd_text(spent)} in all" if spent is not None else ""),
            file=sys.stderr,
        )
        ledger.close()
        interrupted = interrupted or pressed()
        if interrupted:
            print("minillm batch: interrupted", file=sys.stderr)
    if interrupted:
        return INTERRUPTED
    return 0 if summary["failed"] == 0 and summary["cancelled"] == 0 else 1


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[Callable[[], bool]]:
    """Ctrl-C is noted, not raised, in the ``with`` block: what it writes is
    written whole. It yields whether Ctrl-C was pressed. Only the main thread
    is given Ctrl-C, and only there can its handler be set."""
    import signal
    import threading

    pressed: List[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: bool(pressed)
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(True))
    try:
        yield lambda: bool(pressed)
    finally:
        # None: a handler not set from Python, which cannot be put back; the default is.
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _provider_batch(
    args: argparse.Namespace, client: Client, items: List[BatchItem], journal: Journal, budget: Optional[Budget]
) -> Optional[List[BatchResult]]:
    """Submit the job as a provider batch -- or carry on the one the journal
    holds -- wait for it with a progress bar, and return its results; None
    when Ctrl-C stopped it (the batch runs on at the provider, and the same
    command carries it on)."""
    from . import batch
    from .batch.progress import PollReporter

    again = "Run the same command again to carry on: nothing is sent twice, and every result is booked once."
    if args.price is not None and args.price.count(",") == 1:
        print(
            "minillm batch: --price gives no batch multiplier (IN,OUT,BATCH): the items are booked at the full "
            "price, though OpenAI and Anthropic bill batches at half (IN,OUT,0.5)",
            file=sys.stderr,
        )
    try:
        sent = batch.submit(client, items, journal=journal, budget=budget)
    except KeyboardInterrupt:
        print(f"minillm batch: interrupted while sending the provider batch. {again}", file=sys.stderr)
        return None
    print(f"minillm batch: provider batch {sent.id} ({len(sent)} items), polled every {args.poll:g}s", file=sys.stderr)
    bar = PollReporter(not args.no_progress, total=len(sent))
    try:
        sent.wait(poll=args.poll, progress=bar)
        return sent.results(progress=bar)
    except KeyboardInterrupt:
        bar.close()
        print(f"minillm batch: stopped; the provider batch {sent.id} runs on. {again}", file=sys.stderr)
        return None
    finally:
        bar.close()
