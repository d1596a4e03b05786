"""A provider batch double: :class:`BatchServer` plays OpenAI's Files and
Batches APIs and Anthropic's Message Batches API on the loopback server, so
code that submits batches -- :func:`minillm.batch.submit` or your own -- is
tested against the real wire, with no key and no waiting a day.

What it does, for both protocols at once:

- keeps every batch it is sent (:attr:`BatchServer.batches`), and lists
  them newest first, a page at a time;
- moves a batch on one step each time it is polled: processing
  ``ceil(total / steps)`` more items a poll, then (OpenAI) ``finalizing``,
  then ended;
- decides what becomes of each item by a rule of yours (``outcome``:
  ``"succeeded"``, ``"errored"``, ``"expired"`` or ``"invalid"``), answers
  it with the upper-cased prompt and the token counts of another rule
  (``usage``), so a test knows the money to expect;
- writes the results in a shuffled order: OpenAI's output and error
  files, Anthropic's results; cancels (items not yet processed are not
  run);
- holds the reply to the next request of a step (:meth:`BatchServer.hold`)
  until a :class:`~minillm.testing.Gate` opens -- after doing what the
  request asked, as a provider that answered too late would have -- or,
  for results, after the first lines; :meth:`BatchServer.wait_for` waits
  until requests of a step have arrived.

A reply queued with :meth:`~minillm.testing.ScriptedServer.reply` for one
of these paths is served first (a one-off failure, say). The paths,
whatever comes before them (``base_url=server.url`` works for
both providers): ``POST .../files``, ``GET .../files/{id}/content``,
``POST .../batches``, ``GET .../batches``, ``GET .../batches/{id}``,
``POST .../batches/{id}/cancel``, and ``.../v1/messages/batches`` with
``/{id}``, ``/{id}/results`` and ``/{id}/cancel``. Requests without a key
are answered 401.

Thread-safe: each request is answered on its own thread, under one lock.
"""

from __future__ import annotations

import datetime
import json
import math
import random
import re
import socket
import threading
import time
from collections import Counter, deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import attrs

from .._httpserver import RequestHandler
from .server import Gate, RecordedRequest, Reply, ScriptedServer, Step
from .transcripts import chat_completion, chat_usage

__all__ = ["OUTCOMES", "BATCH_STEPS", "BatchServer", "EmulatedBatch"]

#: What may become of an item (the ``outcome`` rule's answers).
OUTCOMES: Tuple[str, ...] = ("succeeded", "errored", "expired", "invalid")

#: The steps whose requests :meth:`BatchServer.hold` and :meth:`BatchServer.wait_for` know.
BATCH_STEPS: Tuple[str, ...] = ("upload", "create", "retrieve", "list", "cancel", "results")

Outcome = Callable[[str, Dict[str, Any]], str]
UsageRule = Callable[[str, Dict[str, Any]], Tuple[int, int]]

_ANTHROPIC = re.compile(r"/v1/messages/batches(?:/(?P<id>[^/]+)(?:/(?P<action>results|cancel))?)?$")
_OPENAI_BATCHES = re.compile(r"/batches(?:/(?P<id>[^/]+)(?:/(?P<action>cancel))?)?$")
_OPENAI_FILES = re.compile(r"/files(?:/(?P<id>[^/]+)/(?P<action>content))?$")


def _succeeded(custom_id: str, body: Dict[str, Any]) -> str:
    return "succeeded"


def _ten_and_five(custom_id: str, body: Dict[str, Any]) -> Tuple[int, int]:
    return 10, 5


@attrs.define(eq=False)
class EmulatedBatch:
    """A batch as the server keeps it (read it; the server changes it)."""

    id: str
    #: ``"openai"`` or ``"anthropic"``
    protocol: str
    #: what its items are for (``/v1/chat/completions``, ``/v1/responses``, ``/v1/messages``)
    endpoint: str
    #: ``(custom_id, request body)`` of each item, in the order sent
    items: List[Tuple[str, Dict[str, Any]]]
    created: float
    metadata: Dict[str, str] = attrs.field(factory=dict)
    #: the provider's own status
    status: str = "validating"
    #: items processed so far (in the order sent)
    processed: int = 0
    polls: int = 0
    cancelled: bool = False
    #: why the batch failed validation (OpenAI)
    failure: Optional[str] = None
    output_file_id: Optional[str] = None
    error_file_id: Optional[str] = None

    @property
    def custom_ids(self) -> List[str]:
        return [custom_id for custom_id, _ in self.items]

    @property
    def ended(self) -> bool:
        return self.status in ("completed", "failed", "expired", "cancelled", "ended")


class BatchServer(ScriptedServer):
    """A :class:`~minillm.testing.ScriptedServer` that also plays the
    provider batch APIs (see the module docstring). Other paths are
    scripted as usual.

    :param outcome: ``outcome(custom_id, body)``: what becomes of an item,
        one of :data:`OUTCOMES` (default: every item succeeds). An
        ``"invalid"`` item fails its whole batch's validation (OpenAI) or
        has its create request refused with a 400 (Anthropic).
    :param usage: ``usage(custom_id, body)``: the ``(input, output)``
        tokens an answered item is billed for (default 10 and 5).
    :param steps: polls over which a batch processes its items.
    :param seed: shuffles the order results are written in.
    """

    def __init__(
        self, *, outcome: Outcome = _succeeded, usage: UsageRule = _ten_and_five, steps: int = 2, seed: int = 0
    ) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be at least 1, not {steps!r}")
        self.outcome = outcome
        self.usage = usage
        self.steps = steps
        self._random = random.Random(seed)
        self._state = threading.Condition()
        self._batches: Dict[str, EmulatedBatch] = {}
        self._files: Dict[str, List[bytes]] = {}
        self._file_names: Dict[str, str] = {}
        self._holds: Dict[str, Deque[Tuple[Gate, Optional[int]]]] = {}
        self._seen: Counter[str] = Counter()
        self._ids = 0

    def start(self) -> BatchServer:
        super().start()
        return self

    def __enter__(self) -> BatchServer:
        return self.start()

    # -- for tests ---------------------------------------------------------------------

    @property
    def batches(self) -> List[EmulatedBatch]:
        """Every batch created, in the order created."""
        with self._state:
            return sorted(self._batches.values(), key=lambda batch: _number(batch.id))

    @property
    def uploads(self) -> List[str]:
        """The names of the files uploaded for batches, in order."""
        with self._state:
            return [self._file_names[file_id] for file_id in sorted(self._file_names, key=_number)]

    def hold(self, step: str, gate: Optional[Gate] = None, *, after: Optional[int] = None) -> Gate:
        """Hold the reply to the next request of ``step`` (one of
        :data:`BATCH_STEPS`) until ``gate`` (returned; made when not given)
        opens. What the request asks is done at once all the same. For
        ``"results"``, ``after`` lines are sent before the hold.
        """
        if step not in BATCH_STEPS:
            raise ValueError(f"step must be one of {', '.join(BATCH_STEPS)}, not {step!r}")
        gate = gate or Gate()
        with self._state:
            self._holds.setdefault(step, deque()).append((gate, after))
        return gate

    def wait_for(self, step: str, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until ``count`` requests of ``step`` have arrived."""
        with self._state:
            return self._state.wait_for(lambda: self._seen[step] >= count, timeout)

    def seen(self, step: str) -> int:
        """How many requests of ``step`` have arrived."""
        with self._state:
            return self._seen[step]

    # -- serving -----------------------------------------------------------------------

    def _serve(self, handler: RequestHandler) -> None:
        # A batch's life is many small exchanges: each reply goes out at
        # once, not after the client's delayed acknowledgement of the last.
        try:
            handler.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover - not a TCP socket
            pass
        super()._serve(handler)

    def _next_reply(self, request: RecordedRequest) -> Reply:
        # A reply queued for the path wins: a test scripts a one-off failure so.
        queued = self._queued(request)
        if queued is not None:
            return queued
        handled = self._handle(request)
        if handled is None:
            return super()._next_reply(request)
        step, reply = handled
        with self._state:
            self._seen[step] += 1
            queue = self._holds.get(step)
            held = queue.popleft() if queue else None
            self._state.notify_all()
        if held is None:
            return reply
        gate, after = held
        if after is None:
            return reply.held(gate)
        body: List[Step] = [*reply.body[:after], gate, *reply.body[after:]]
        return attrs.evolve(reply, body=tuple(body))

    def _handle(self, request: RecordedRequest) -> Optional[Tuple[str, Reply]]:
        """The step of a batch API request and its reply; None for another path."""
        path, method = request.path, request.method
        anthropic = _ANTHROPIC.search(path)
        batches = None if anthropic else _OPENAI_BATCHES.search(path)
        files = None if anthropic or batches else _OPENAI_FILES.search(path)
        match = anthropic or batches or files
        if match is None:
            return None
        if files is not None:
            step = "upload" if method == "POST" else "results"
        else:
            action = match.group("action")
            step = action if action else ("retrieve" if match.group("id") else "create" if method == "POST" else "list")
        if anthropic is not None:
            if not request.headers.get("x-api-key") or not request.headers.get("anthropic-version"):
                return step, _error(401, "authentication_error", "no x-api-key, or no anthropic-version")
            return step, self._anthropic(request, step, match.group("id"))
        if len(request.headers.get("authorization", "").removeprefix("Bearer ").strip()) < 1:
            return step, _error(401, "invalid_api_key", "no key")
        if files is not None:
            return step, self._upload(request) if step == "upload" else self._content(match.group("id") or "")
        return step, self._openai(request, step, match.group("id"))

    # -- OpenAI -----------------------------------------------------------------------

    def _upload(self, request: RecordedRequest) -> Reply:
        fields = _multipart(request)
        if fields.get("purpose", (None, b""))[1] != b"batch" or "file" not in fields:
            return _error(400, "invalid_request_error", "a batch file is uploaded with purpose=batch and a file")
        name, content = fields["file"]
        with self._state:
            file_id = self._new_id("file-")
            self._files[file_id] = [line + b"\n" for line in content.splitlines() if line.strip()]
            self._file_names[file_id] = name or "upload.jsonl"
        return Reply.json(
            {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": name,
                "purpose": "batch",
                "status": "processed",
            }
        )

    def _content(self, file_id: str) -> Reply:
        with self._state:
            lines = self._files.get(file_id)
        if lines is None:
            return _error(404, "invalid_request_error", f"no such file: {file_id}")
        return Reply(headers=(("Content-Type", "application/octet-stream"),), body=tuple(lines))

    def _openai(self, request: RecordedRequest, step: str, batch_id: Optional[str]) -> Reply:
        if step == "create":
            return self._openai_create(request.json())
        if step == "list":
            return self._list(request, "openai", cursor="after")
        with self._state:
            batch = self._batches.get(batch_id or "")
            if batch is None or batch.protocol != "openai":
                return _error(404, "invalid_request_error", f"no batch {batch_id}")
            if step == "cancel":
                if batch.ended:
                    return _error(409, "invalid_request_error", f"batch {batch_id} has ended")
                batch.cancelled, batch.status = True, "cancelling"
            else:
                self._advance(batch)
            return Reply.json(self._openai_view(batch))

    def _openai_create(self, data: Dict[str, Any]) -> Reply:
        with self._state:
            lines = self._files.get(str(data.get("input_file_id")))
            if lines is None:
                return _error(400, "invalid_request_error", "input_file_id names no uploaded file")
            endpoint = str(data.get("endpoint"))
            if endpoint not in ("/v1/chat/completions", "/v1/responses") or data.get("completion_window") != "24h":
                return _error(400, "invalid_request_error", "endpoint or completion_window not supported")
            items: List[Tuple[str, Dict[str, Any]]] = []
            problems: List[Dict[str, Any]] = []
            for number, line in enumerate(lines, 1):
                entry = json.loads(line)
                if entry.get("method") != "POST" or entry.get("url") != endpoint:
                    problems.append({"code": "invalid_url", "line": number, "message": "url is not the endpoint"})
                items.append((str(entry.get("custom_id")), entry.get("body") or {}))
            if len({custom_id for custom_id, _ in items}) != len(items):
                problems.append({"code": "duplicate_custom_id", "line": None, "message": "custom_id repeats"})
            for number, (custom_id, body) in enumerate(items, 1):
                if self.outcome(custom_id, body) == "invalid":
                    problems.append({"code": "invalid_request", "line": number, "message": f"{custom_id} is invalid"})
            batch = EmulatedBatch(
                id=self._new_id("batch_"),
                protocol="openai",
                endpoint=endpoint,
                items=items,
                created=time.time(),
                metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
                failure=json.dumps(problems) if problems else None,
            )
            self._batches[batch.id] = batch
            return Reply.json(self._openai_view(batch))

    def _openai_view(self, batch: EmulatedBatch) -> Dict[str, Any]:
        done = batch.items[: batch.processed]
        failed = sum(1 for custom_id, body in done if self.outcome(custom_id, body) != "succeeded")
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "input_file_id": "file-input",
            "completion_window": "24h",
            "status": batch.status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": int(batch.created),
            "errors": {"object": "list", "data": json.loads(batch.failure)} if batch.failure else None,
            "request_counts": {"total": len(batch.items), "completed": len(done) - failed, "failed": failed},
            "metadata": batch.metadata,
        }

    # -- Anthropic --------------------------------------------------------------------

    def _anthropic(self, request: RecordedRequest, step: str, batch_id: Optional[str]) -> Reply:
        if step == "create":
            return self._anthropic_create(request.json())
        if step == "list":
            return self._list(request, "anthropic", cursor="after_id")
        with self._state:
            batch = self._batches.get(batch_id or "")
            if batch is None or batch.protocol != "anthropic":
                return _error(404, "not_found_error", f"no batch {batch_id}")
            if step == "results":
                if not batch.ended:
                    return _error(400, "invalid_request_error", f"batch {batch_id} has not ended")
                lines = tuple(line for _, line in self._results_of(batch))
                return Reply(headers=(("Content-Type", "application/binary"),), body=lines)
            if step == "cancel":
                if not batch.ended:
                    batch.cancelled, batch.status = True, "canceling"
            else:
                self._advance(batch)
            return Reply.json(self._anthropic_view(batch))

    def _anthropic_create(self, data: Dict[str, Any]) -> Reply:
        requests = data.get("requests")
        if not isinstance(requests, list) or not requests:
            return _error(400, "invalid_request_error", "requests: a non-empty list")
        items = []
        for entry in requests:
            custom_id, params = entry.get("custom_id"), entry.get("params")
            if not isinstance(custom_id, str) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", custom_id):
                return _error(400, "invalid_request_error", f"custom_id {custom_id!r} does not match ^[a-zA-Z0-9_-]+$")
            if not isinstance(params, dict) or not {"model", "max_tokens", "messages"} <= set(params):
                return _error(400, "invalid_request_error", f"{custom_id}: params need model, max_tokens, messages")
            if "stream" in params:
                return _error(400, "invalid_request_error", f"{custom_id}: a batched request does not stream")
            if self.outcome(custom_id, params) == "invalid":
                return _error(400, "invalid_request_error", f"{custom_id}: invalid")
            items.append((custom_id, params))
        if len({custom_id for custom_id, _ in items}) != len(items):
            return _error(400, "invalid_request_error", "custom_id must be unique within a batch")
        with self._state:
            batch = EmulatedBatch(
                id=self._new_id("msgbatch_"),
                protocol="anthropic",
                endpoint="/v1/messages",
                items=items,
                created=time.time(),
                status="in_progress",
            )
            self._batches[batch.id] = batch
            return Reply.json(self._anthropic_view(batch))

    def _anthropic_view(self, batch: EmulatedBatch) -> Dict[str, Any]:
        counts = {"processing": len(batch.items) - batch.processed, "succeeded": 0, "errored": 0, "canceled": 0}
        counts["expired"] = 0
        if batch.ended:  # the per-kind counts are zero until the batch ends
            counts["processing"] = 0
            for custom_id, body in batch.items:
                kind = self._kind(batch, custom_id, body)
                counts[kind] += 1
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": counts,
            "created_at": _rfc3339(batch.created),
            "ended_at": _rfc3339(time.time()) if batch.ended else None,
            "expires_at": _rfc3339(batch.created + 86400),
            "cancel_initiated_at": None,
            "archived_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch.id}/results" if batch.ended else None,
        }

    # -- both -------------------------------------------------------------------------

    def _advance(self, batch: EmulatedBatch) -> None:
        """One poll's worth of progress (under the lock)."""
        batch.polls += 1
        total = len(batch.items)
        if batch.ended:
            return
        if batch.cancelled:
            batch.status = "cancelled" if batch.protocol == "openai" else "ended"
            self._finish(batch)
        elif batch.status == "validating":
            if batch.failure is not None:
                batch.status = "failed"
            else:
                batch.status = "in_progress"
                batch.processed = min(total, math.ceil(total / self.steps))
        elif batch.processed < total:
            batch.processed = min(total, batch.processed + math.ceil(total / self.steps))
        elif batch.protocol == "openai" and batch.status == "in_progress":
            batch.status = "finalizing"
        else:
            expired = any(self.outcome(custom_id, body) == "expired" for custom_id, body in batch.items)
            batch.status = ("expired" if expired else "completed") if batch.protocol == "openai" else "ended"
            self._finish(batch)

    def _finish(self, batch: EmulatedBatch) -> None:
        """Write an ended OpenAI batch's output and error files."""
        if batch.protocol != "openai":
            return
        lines = self._results_of(batch)
        output = [line for kind, line in lines if kind == "succeeded"]
        errors = [line for kind, line in lines if kind != "succeeded"]
        if output:
            batch.output_file_id = self._new_id("file-")
            self._files[batch.output_file_id] = output
        if errors:
            batch.error_file_id = self._new_id("file-")
            self._files[batch.error_file_id] = errors

    def _kind(self, batch: EmulatedBatch, custom_id: str, body: Dict[str, Any]) -> str:
        rule = self.outcome(custom_id, body)
        if rule == "expired":
            return "expired"
        if batch.cancelled and batch.custom_ids.index(custom_id) >= batch.processed:
            return "canceled"
        return "errored" if rule == "errored" else "succeeded"

    def _results_of(self, batch: EmulatedBatch) -> List[Tuple[str, bytes]]:
        """The result lines of an ended batch, each with its kind, shuffled."""
        lines = []
        for custom_id, body in batch.items:
            kind = self._kind(batch, custom_id, body)
            if batch.protocol == "openai":
                if kind == "canceled":
                    continue  # never run: in neither file
                line = self._openai_line(batch, custom_id, body, kind)
            else:
                line = self._anthropic_line(custom_id, body, kind)
            lines.append((kind, json.dumps(line).encode("utf-8") + b"\n"))
        self._random.shuffle(lines)
        return lines

    def _openai_line(self, batch: EmulatedBatch, custom_id: str, body: Dict[str, Any], kind: str) -> Dict[str, Any]:
        line: Dict[str, Any] = {"id": f"batch_req_{custom_id}", "custom_id": custom_id, "response": None, "error": None}
        if kind == "expired":
            line["error"] = {
                "code": "batch_expired",
                "message": "This request could not be executed before the completion window expired.",
            }
        elif kind == "errored":
            error = {
                "message": f"{custom_id} was refused",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
            line["response"] = {"status_code": 400, "request_id": f"req_{custom_id}", "body": {"error": error}}
        else:
            answer = self._answer(custom_id, body, batch.endpoint)
            line["response"] = {"status_code": 200, "request_id": f"req_{custom_id}", "body": answer}
        return line

    def _anthropic_line(self, custom_id: str, body: Dict[str, Any], kind: str) -> Dict[str, Any]:
        if kind == "succeeded":
            result: Dict[str, Any] = {"type": "succeeded", "message": self._answer(custom_id, body, "/v1/messages")}
        elif kind == "errored":
            error = {"type": "invalid_request_error", "message": f"{custom_id} was refused"}
            result = {"type": "errored", "error": {"type": "error", "error": error}}
        else:
            result = {"type": kind}
        return {"custom_id": custom_id, "result": result}

    def _answer(self, custom_id: str, body: Dict[str, Any], endpoint: str) -> Dict[str, Any]:
        text = _prompt_of(body).upper()
        prompt, completion = self.usage(custom_id, body)
        model = str(body.get("model", "test-model"))
        if endpoint == "/v1/messages":
            return {
                "id": f"msg_{custom_id}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": prompt, "output_tokens": completion, "service_tier": "batch"},
            }
        if endpoint == "/v1/responses":
            return {
                "id": f"resp_{custom_id}",
                "object": "response",
                "status": "completed",
                "model": model,
                "output": [
                    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}
                ],
                "usage": {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion},
                "service_tier": "default",
            }
        answer = chat_completion(text, id=f"chatcmpl-{custom_id}", model=model, usage=chat_usage(prompt, completion))
        answer["service_tier"] = "default"  # what OpenAI's batch answers say: the batch rate is the batch's
        return answer

    def _list(self, request: RecordedRequest, protocol: str, *, cursor: str) -> Reply:
        query = request.query
        limit = int((query.get("limit") or ["20"])[0])
        after: Optional[str] = (query.get(cursor) or [""])[0] or None
        with self._state:
            mine = [batch for batch in self._batches.values() if batch.protocol == protocol]
            newest = sorted(mine, key=lambda batch: (batch.created, _number(batch.id)), reverse=True)
            views = [self._openai_view(b) if protocol == "openai" else self._anthropic_view(b) for b in newest]
        start = next((i + 1 for i, view in enumerate(views) if view["id"] == after), 0) if after else 0
        page = views[start : start + limit]
        data: Dict[str, Any] = {
            "data": page,
            "has_more": start + limit < len(views),
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }
        if protocol == "openai":
            data["object"] = "list"
        return Reply.json(data)

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:06d}"


def _number(identifier: str) -> int:
    digits = re.sub(r"\D", "", identifier)
    return int(digits) if digits else 0


def _error(status: int, kind: str, message: str) -> Reply:
    return Reply.json({"type": "error", "error": {"type": kind, "message": message}}, status=status)


def _rfc3339(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _prompt_of(body: Dict[str, Any]) -> str:
    """The text of the last message of a request body (any of the three protocols)."""
    turns = body.get("messages") or body.get("input") or []
    if isinstance(turns, str):
        return turns
    for turn in reversed(turns):
        content = turn.get("content") if isinstance(turn, dict) else None
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _multipart(request: RecordedRequest) -> Dict[str, Tuple[Optional[str], bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (filename, content)."""
    match = re.search(r"boundary=\"?([^\";]+)\"?", request.headers.get("content-type", ""))
    if match is None:
        return {}
    fields: Dict[str, Tuple[Optional[str], bytes]] = {}
    for part in request.body.split(b"--" + match.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', disposition)
        filename = re.search(r'filename="([^"]*)"', disposition)
        if name is not None:
            fields[name.group(1)] = (filename.group(1) if filename else None, content.removesuffix(b"\r\n"))
    return fields
