"""A batch job's input file: JSON lines, each a prompt string or an object
with ``prompt`` (and ``id``, ``system``, ``max_tokens``, ``temperature``,
``meta``).

The whole file is read and checked before anything is sent: a job that
would stop at its thousandth line stops before its first, and every
problem is named by its place, ``file:line: what is wrong``.
"""

from __future__ import annotations

import json
from typing import List, Optional

import attrs

from ..errors import InvalidArgumentError
from .items import BatchItem

__all__ = ["read_items"]

#: The most problems one error lists: enough to fix a file at once, short enough to read.
_SHOWN = 20


def read_items(path: str, *, system: Optional[str] = None, max_tokens: Optional[int] = None) -> List[BatchItem]:
    """The items of the JSONL file at ``path``; blank lines are skipped.

    :param system: the system prompt of every item that has none.
    :param max_tokens: the limit of every item that sets none.
    :raises InvalidArgumentError: the file cannot be read, or has lines
        that are not items -- each one named, ``path:line: why``.
    """
    try:
        with open(path, encoding="utf-8") as source:
            lines = source.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidArgumentError(f"cannot read {path}: {reason}") from None
    items: List[BatchItem] = []
    problems: List[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            problems.append(f"{path}:{number}: not JSON")
            continue
        try:
            item = BatchItem.of(value)
        except InvalidArgumentError as exc:
            problems.append(f"{path}:{number}: {exc}")
            continue
        if item.system is None and system is not None:
            item = attrs.evolve(item, system=system)
        if item.max_tokens is None and max_tokens is not None:
            item = attrs.evolve(item, max_tokens=max_tokens)
        items.append(item)
    if problems:
        more = len(problems) - _SHOWN
        shown = problems[:_SHOWN] + ([f"... and {more} more"] if more > 0 else [])
        count = f"{len(problems)} lines are" if len(problems) > 1 else "a line is"
        raise InvalidArgumentError(f"nothing was sent: {count} not a batch item\n" + "\n".join(shown))
    return items
