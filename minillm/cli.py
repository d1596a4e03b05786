"""The ``minillm`` command line (also ``python -m minillm``)."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ._version import __version__
from .errors import MiniLLMError

__all__ = ["main"]


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
        description="Start an OpenAI-compatible server on a free loopback port, stream a canned "
        "answer from it through the real HTTP path, and settle its cost into a ledger.",
    )
    demo.add_argument("--delay", type=float, default=0.03, help="seconds between streamed tokens (default 0.03)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(delay=max(args.delay, 0.0))
            return 0
        parser.print_help()
        return 2
    except MiniLLMError as exc:
        print(f"minillm: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
