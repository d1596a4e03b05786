"""What a batch is made of and gives back: :class:`BatchItem` in,
:class:`BatchResult` out, and :func:`summarize` over the results.

Both runners share these values -- the real-time one
(:mod:`minillm.batch.realtime`) and the provider batches
(:mod:`minillm.batch.provider`) -- and so does the journal, which keeps a
result as :meth:`BatchResult.to_dict` and reads it back with
:func:`result_from`.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import attrs

from ..errors import InvalidArgumentError
from ..models import CostInfo, Usage
from ..serialization import cost_from_dict, cost_to_dict

__all__ = ["CANCELLED", "BatchItem", "BatchResult", "Prompt", "result_from", "summarize"]

#: The ``error`` of an item the batch was stopped before finishing.
CANCELLED = "cancelled"

Prompt = Union[str, Sequence[Mapping[str, Any]]]


def _check_prompt(item: Any, attribute: Any, prompt: Any) -> None:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidArgumentError("'prompt' is empty")
        return
    if isinstance(prompt, Sequence) and prompt and all(_is_message(message) for message in prompt):
        return
    raise InvalidArgumentError(
        f"'prompt' must be a string or a list of messages with a 'role' each, not {_shown(prompt)}"
    )


def _is_message(message: Any) -> bool:
    return isinstance(message, Mapping) and isinstance(message.get("role"), str)


def _check_system(item: Any, attribute: Any, system: Any) -> None:
    if system is not None and not isinstance(system, str):
        raise InvalidArgumentError(f"'system' must be a string, not {_shown(system)}")


def _check_max_tokens(item: Any, attribute: Any, max_tokens: Any) -> None:
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise InvalidArgumentError(f"'max_tokens' must be a positive integer, not {_shown(max_tokens)}")


def _check_temperature(item: Any, attribute: Any, temperature: Any) -> None:
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))):
        raise InvalidArgumentError(f"'temperature' must be a number, not {_shown(temperature)}")


def _check_meta(item: Any, attribute: Any, meta: Any) -> None:
    if not isinstance(meta, Mapping) or not all(isinstance(key, str) for key in meta):
        raise InvalidArgumentError(f"'meta' must be an object with string keys, not {_shown(meta)}")


def _shown(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


@attrs.frozen
class BatchItem:
    """One prompt of a batch, with its own options. What cannot be sent is
    refused here, before anything is (:class:`~minillm.InvalidArgumentError`).

    :param prompt: a non-empty string, or OpenAI-shaped messages.
    :param id: the caller's identifier, carried into the result.
    """

    prompt: Prompt = attrs.field(validator=_check_prompt)
    id: Any = None
    system: Optional[str] = attrs.field(default=None, validator=_check_system)
    max_tokens: Optional[int] = attrs.field(default=None, validator=_check_max_tokens)
    temperature: Optional[float] = attrs.field(default=None, validator=_check_temperature)
    meta: Mapping[str, Any] = attrs.field(factory=dict, validator=_check_meta)

    @classmethod
    def of(cls, value: Union[BatchItem, Prompt, Mapping[str, Any]]) -> BatchItem:
        """An item from a prompt string, a dict with ``prompt`` (and
        ``id``, ``system``, ``max_tokens``, ``temperature``, ``meta``), or an item."""
        if isinstance(value, BatchItem):
            return value
        if isinstance(value, str):
            return cls(prompt=value)
        if isinstance(value, Mapping):
            if "prompt" not in value:
                raise InvalidArgumentError(f"a batch item needs a 'prompt', not just {sorted(value) or 'nothing'}")
            known = {f.name for f in attrs.fields(cls)}
            unknown = set(value) - known
            if unknown:
                raise InvalidArgumentError(f"a batch item has unknown fields: {sorted(unknown)}")
            return cls(**dict(value))
        return cls(prompt=value)

    def key(self, index: int) -> str:
        """What identifies the item in a journal: its place and its content."""
        content = json.dumps(attrs.asdict(self), sort_keys=True, default=str)
        return f"{index}:{hashlib.sha256(content.encode('utf-8')).hexdigest()[:32]}"


@attrs.frozen
class BatchResult:
    """What became of one item. ``error`` is None when it succeeded."""

    index: int
    id: Any
    text: Optional[str] = None
    finish_reason: Optional[str] = None
    usage: Optional[Usage] = None
    cost: Optional[CostInfo] = None
    error: Optional[str] = None
    attempts: int = 0
    #: read back from the journal: not sent (or paid for) again
    from_journal: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready (money as a string)."""
        return {
            "index": self.index,
            "id": self.id,
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": None if self.usage is None else _usage_dict(self.usage),
            "cost": None if self.cost is None else cost_to_dict(self.cost),
            "error": self.error,
            "attempts": self.attempts,
        }


def _usage_dict(usage: Usage) -> Dict[str, Any]:
    data = attrs.asdict(usage)
    for name in ("cost", "upstream_inference_cost"):
        if data[name] is not None:
            data[name] = str(data[name])
    return data


def result_from(data: Dict[str, Any]) -> BatchResult:
    """A result as :meth:`BatchResult.to_dict` wrote it, read back from a
    journal (``from_journal`` is set)."""
    usage = data.get("usage")
    cost = data.get("cost")
    return BatchResult(
        index=data["index"],
        id=data.get("id"),
        text=data.get("text"),
        finish_reason=data.get("finish_reason"),
        usage=None if usage is None else Usage(**{k: _number(k, v) for k, v in usage.items()}),
        cost=None if cost is None else cost_from_dict(cost),
        error=data.get("error"),
        attempts=data.get("attempts", 0),
        from_journal=True,
    )


def _number(name: str, value: Any) -> Any:
    if name in ("cost", "upstream_inference_cost") and value is not None:
        return Decimal(value)
    return value


def summarize(results: Sequence[BatchResult]) -> Dict[str, Any]:
    """Counts, tokens and money of a batch: ``items``, ``done``,
    ``from_journal`` (done items read back from a journal), ``failed``,
    ``cancelled`` (not finished: the batch was
    stopped), ``tokens`` and ``usd`` (the known money of the done items'
    answers -- attempts that failed are in the ledger, not here) and
    ``unknown`` (done items whose money is not known)."""
    done = [r for r in results if r.ok]
    cancelled = sum(1 for r in results if r.error == CANCELLED)
    return {
        "items": len(results),
        "done": len(done),
        "from_journal": sum(r.from_journal for r in done),
        "failed": len(results) - len(done) - cancelled,
        "cancelled": cancelled,
        "tokens": sum(r.usage.total_tokens for r in done if r.usage is not None),
        "usd": sum((r.cost.usd for r in done if r.cost is not None and r.cost.usd is not None), Decimal(0)),
        "unknown": sum(1 for r in done if r.cost is None or r.cost.usd is None),
    }
