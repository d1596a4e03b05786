"""The ``minillm`` command line (also ``python -m minillm``).

``minillm demo``    stream a priced answer from a local server (no key, no network)
``minillm chat``    stream a reply from any model to the terminal, with its cost
``minillm serve``   expose an engine as an OpenAI-compatible server

A configuration problem (a missing key, an unknown provider) is one line
naming what to set, and a non-zero exit -- never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from decimal import Decimal, InvalidOperation
from typing import Optional, Sequence, TextIO

from ._version import __version__
from .errors import MiniLLMError

__all__ = ["main"]

#: The exit status of a run stopped with Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minillm",
        description="A synchronous LLM SDK whose costs add up.",
    )
    parser.add_argument("--version", action="version", version=f"minillm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="stream a tracked, priced answer from a local server (no key, no network)",
        description="Start minillm serve with the ngram engine on a free loopback port, stream an answer "
        "from it through the real HTTP path, and settle its cost into a ledger.",
    )
    demo.add_argument("--delay", type=float, default=0.03, help="seconds between streamed tokens (default 0.03)")

    chat = commands.add_parser(
        "chat",
        help="stream a reply from a model to the terminal",
        description="Stream a reply from MODEL ('provider/model-name', e.g. local/ngram or "
        "anthropic/claude-haiku-4-5) and print its cost on stderr. Ctrl-C stops the reply and still settles it.",
    )
    chat.add_argument("model", help="'provider/model-name'")
    chat.add_argument("prompt", nargs="?", help="the prompt (read from stdin when omitted)")
    chat.add_argument("--system", help="a system prompt")
    chat.add_argument("--max-tokens", type=int, help="the most tokens to generate")
    chat.add_argument("--temperature", type=float, help="sampling temperature")
    chat.add_argument("--base-url", help="the API root (default: the provider's, or its *_BASE_URL variable)")
    chat.add_argument(
        "--price",
        metavar="IN,OUT",
        help="USD per million input and output tokens, for providers that send no cost (e.g. 0.80,4.00)",
    )

    serve = commands.add_parser(
        "serve",
        help="expose an engine as an OpenAI-compatible server",
        description="Serve an engine over the OpenAI Chat Completions protocol: POST /v1/chat/completions, "
        "GET /v1/models, GET /health.",
    )
    serve.add_argument("--engine", required=True, help="echo, ngram, or 'package.module:factory' for your own engine")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="the port (default 8000; 0 picks a free one)")
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
            return _chat(args, sys.stdin, sys.stdout, sys.stderr)
        if args.command == "serve":
            return _serve(args)
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
    from .errors import ConfigurationError
    from .pricing import TokenPrice

    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise InvalidOperation
        return TokenPrice(input_per_mtok=Decimal(parts[0]), output_per_mtok=Decimal(parts[1]))
    except (InvalidOperation, ValueError):
        raise ConfigurationError(f"--price wants two numbers, IN,OUT (like 0.80,4.00), not {text!r}") from None


def _chat(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    from .client import Client
    from .demo import cost_summary
    from .pricing import TokenPrice

    price = _price(args.price)
    assert price is None or isinstance(price, TokenPrice)
    prompt = args.prompt if args.prompt is not None else stdin.read().strip()
    if not prompt.strip():
        print("minillm: no prompt: give one as an argument or on stdin", file=stderr)
        return 2
    interrupted = False
    with Client(args.model, base_url=args.base_url, price=price) as client:
        stream = client.stream(prompt, system=args.system, max_tokens=args.max_tokens, temperature=args.temperature)
        try:
            with stream:
                for text in stream.text_stream():
                    stdout.write(text)
                    stdout.flush()
        except KeyboardInterrupt:
            interrupted = True  # leaving the block cancelled the stream and settled it
        stdout.write("\n")
        stdout.flush()
        client.flush(timeout=10)  # a cost being looked up has a moment to arrive
        cost = stream.cost
    print(f"cost: {cost_summary(cost)}" if cost is not None else "cost: not settled yet", file=stderr)
    return INTERRUPTED if interrupted else 0


def _serve(args: argparse.Namespace) -> int:
    from .engines.registry import get_engine
    from .serve.server import EngineServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)

    def ready(server: EngineServer) -> None:
        config = server.app.engine.config
        model = config.model if config is not None else args.engine
        print(f"minillm: serving {args.engine} as {model!r} on {server.url}/v1 (Ctrl-C stops)", file=sys.stderr)

    server = EngineServer(get_engine(args.engine), host=args.host, port=args.port)
    try:
        server.serve_forever(on_ready=ready)
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # the port is taken, say
        print(f"minillm: cannot serve on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
