"""The provider batch protocols: what each provider's batch API looks like
on the wire, and nothing else.

A :class:`BatchAPI` builds the :class:`~minillm.transports.HTTPRequest` s
that upload, create, poll, list and cancel a batch and fetch its results,
and reads the provider's answers -- parsed JSON, or one line of results --
into :class:`Remote` and :class:`Line`. It does no I/O (the caller,
:mod:`minillm.batch.provider`, sends through the client's route) and knows
nothing about money. Which protocol a client speaks comes from its
adapter's ``batch_protocol`` (:data:`PROTOCOLS`), never from the
provider's name.

=====================  ==========================================  ==========================================
                       OpenAI (``"openai"``)                       Anthropic (``"anthropic"``)
=====================  ==========================================  ==========================================
items                  a JSONL file uploaded to ``/files``         inside the create request
                       (``purpose=batch``), one
                       ``{custom_id, method, url, body}`` a line
create                 ``POST /batches`` (``input_file_id``,       ``POST /v1/messages/batches``
                       ``endpoint``, ``completion_window: 24h``,   (``{"requests": [{custom_id, params}]}``)
                       ``metadata``)
a batch's own name     ``metadata`` (this job and part)            none: a batch has no metadata
poll                   ``GET /batches/{id}``: ``status``,          ``GET /v1/messages/batches/{id}``:
                       ``request_counts``                          ``processing_status``, ``request_counts``
results                ``output_file_id`` and ``error_file_id``,   ``results_url``: JSONL of
                       ``GET /files/{id}/content``: JSONL of       ``{custom_id, result: {type, message |
                       ``{custom_id, response: {status_code,       error}}}``, ``type`` one of succeeded,
                       body}, error}``                             errored, canceled, expired
limits per batch       50,000 requests, a 200 MB file              100,000 requests, 256 MB
=====================  ==========================================  ==========================================
"""

from __future__ import annotations

import abc
import datetime
import json
import uuid
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type
from urllib.parse import urlencode, urlsplit

import attrs

from ..errors import ConfigurationError, MalformedResponseError
from ..providers.base import SHAPE_ERRORS, Adapter, path_segment
from ..transports.base import HTTPRequest, endpoint_of

__all__ = ["PROTOCOLS", "AnthropicBatches", "BatchAPI", "Line", "OpenAIBatches", "Page", "Remote", "api_for"]

#: minillm's statuses of a batch, in the order a batch goes through them.
STATUSES: Tuple[str, ...] = ("validating", "in_progress", "finalizing", "cancelling", "ended")

#: The metadata keys that name a batch's job and part (OpenAI).
TAG_JOB = "minillm_job"
TAG_PART = "minillm_part"

#: How far a provider's clock may be behind ours when a batch is looked for
#: by the time it was created: a batch created up to this long before the
#: journaled send counts as made after it. Generous on purpose -- a batch
#: missed is a batch created twice, a batch too many only an ambiguity.
CLOCK_SKEW = 600.0


@attrs.frozen
class Remote:
    """A batch as its provider describes it."""

    id: str
    #: minillm's status (one of :data:`STATUSES`, or the provider's own
    #: word for one it does not know, which is never ``"ended"``)
    status: str
    #: the provider's own status
    native: str
    #: the items the counts add up to (Anthropic's add up to the batch's
    #: size only once it has ended)
    total: int = 0
    #: items answered so far (Anthropic says only once the batch ended)
    succeeded: int = 0
    #: items that failed, expired or were cancelled so far
    failed: int = 0
    #: items still being processed, where the provider counts them (Anthropic)
    processing: Optional[int] = None
    #: when it was created (seconds since the epoch), if said
    created: Optional[float] = None
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    #: where its results are: file ids (OpenAI), the results URL (Anthropic)
    results: Tuple[str, ...] = ()
    #: why the whole batch failed (none of its items was run)
    failure: Optional[str] = None

    @property
    def ended(self) -> bool:
        return self.status == "ended"

    def answered(self, size: int) -> int:
        """How many of the batch's ``size`` items are answered so far (an
        Anthropic batch: those no longer processing, less those known failed)."""
        if self.processing is None or self.ended:
            return self.succeeded
        return max(size - self.processing - self.failed, 0)


@attrs.frozen
class Line:
    """What became of one item, as a line of the results says.

    ``body`` is the answer when the provider answered the item (and bills
    it); otherwise ``error`` says why not, and ``attempted`` whether the
    provider tried it at all (not when it expired or was cancelled first).
    """

    custom_id: str
    body: Any = None
    error: Optional[str] = None
    attempted: bool = True

    @property
    def answered(self) -> bool:
        return self.error is None


@attrs.frozen
class Page:
    """One page of a listing of batches, newest first."""

    batches: Tuple[Remote, ...]
    #: the cursor of the next (older) page, or None at the end
    after: Optional[str]


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


def _rfc3339(value: Any) -> Optional[float]:
    """Seconds since the epoch of an RFC 3339 time (``...Z``, any fraction)."""
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python before 3.11 takes at most six digits of a fraction
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _error_text(error: Any) -> str:
    """``type: message`` of a provider's error object (or its JSON)."""
    if isinstance(error, Mapping):
        inner = error.get("error")
        if isinstance(inner, Mapping):
            error = inner
        kind = _text(error.get("code")) or _text(error.get("type"))
        message = _text(error.get("message")) or json.dumps(error, sort_keys=True, default=str)[:300]
        return f"{kind}: {message}" if kind else message
    return str(error)[:300]


EXPIRED = "expired: the batch ended before the provider processed this item"
CANCELED = "canceled: the batch was cancelled before the provider processed this item"


class BatchAPI(abc.ABC):
    """One provider's batch protocol, for one adapter (its key, headers and
    base URL). Immutable; thread-safe. Subclasses set the class attributes
    -- tests make the limits small -- and implement the methods."""

    #: the ``batch_protocol`` name adapters give
    name: ClassVar[str]
    #: the most items one provider batch takes
    max_requests: ClassVar[int]
    #: the most bytes of items one provider batch takes
    max_bytes: ClassVar[int]
    #: the items are uploaded as a file before the batch is created
    uploads: ClassVar[bool] = False
    #: a batch carries metadata naming its job and part, so a batch whose
    #: creation was not answered is found by name; without it, only by its
    #: creation time and size
    tagged: ClassVar[bool] = False

    def __init__(self, adapter: Adapter, base_url: str) -> None:
        self.adapter = adapter
        self.base_url = base_url.rstrip("/")

    # -- items ------------------------------------------------------------------------

    @abc.abstractmethod
    def endpoint(self, path: str) -> str:
        """What the batch says its items are for, given the adapter's path
        for one real-time request."""

    @abc.abstractmethod
    def item(self, custom_id: str, endpoint: str, body: Mapping[str, Any]) -> str:
        """One item as the batch carries it (JSON text)."""

    def size(self, item: str) -> int:
        """The bytes ``item`` adds to a batch."""
        return len(item.encode("utf-8")) + 1

    #: the bytes a batch takes besides its items
    overhead: ClassVar[int] = 0

    # -- requests ---------------------------------------------------------------------

    def upload(self, name: str, items: Sequence[str]) -> HTTPRequest:
        """The request that uploads ``items`` as the file ``name``."""
        raise NotImplementedError(f"{self.name} batches upload no file")

    def uploaded(self, data: Any) -> str:
        """The file id from an upload's answer."""
        raise NotImplementedError(f"{self.name} batches upload no file")

    @abc.abstractmethod
    def create(
        self, items: Sequence[str], *, endpoint: str, file_id: Optional[str], tags: Mapping[str, str]
    ) -> HTTPRequest:
        """The request that creates a batch of ``items`` (or of the uploaded
        ``file_id``), named by ``tags`` where the protocol can carry them."""

    @abc.abstractmethod
    def retrieve(self, batch_id: str) -> HTTPRequest: ...

    @abc.abstractmethod
    def listing(self, after: Optional[str]) -> HTTPRequest:
        """One page of this account's batches, newest first."""

    @abc.abstractmethod
    def cancel(self, batch_id: str) -> HTTPRequest: ...

    @abc.abstractmethod
    def result_requests(self, remote: Remote) -> List[HTTPRequest]:
        """The requests whose bodies are an ended batch's results."""

    # -- answers ----------------------------------------------------------------------

    @abc.abstractmethod
    def remote(self, data: Any) -> Remote:
        """A batch from the provider's description of it.

        :raises MalformedResponseError: it is not one.
        """

    def page(self, data: Any) -> Page:
        """A page of a listing (both providers page alike: ``data``,
        ``has_more`` and the ``last_id`` to go on after)."""
        try:
            batches = tuple(self.remote(entry) for entry in data["data"])
            more = data.get("has_more") is True and bool(batches)
            return Page(batches, (_text(data.get("last_id")) or batches[-1].id) if more else None)
        except SHAPE_ERRORS as exc:
            raise self._malformed("a list of batches", data, exc) from None

    @abc.abstractmethod
    def line(self, text: str) -> Line:
        """One line of results.

        :raises MalformedResponseError: it cannot be read (a line that
            cannot be tied to its item could be an answer that is billed).
        """

    def is_ours(self, remote: Remote, *, tags: Mapping[str, str], count: int, since: float) -> bool:
        """Whether ``remote`` may be the batch whose creation, sent at
        ``since`` with ``count`` items and ``tags``, was never answered."""
        if self.tagged:
            return all(remote.metadata.get(key) == value for key, value in tags.items())
        if remote.created is None or remote.created < since - CLOCK_SKEW:
            return False
        # While a batch runs its counts may add up to less than its size.
        return remote.total == count if remote.ended else 0 < remote.total <= count

    # -- helpers ----------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: Optional[bytes] = None, *, content_type: Optional[str] = None
    ) -> HTTPRequest:
        headers = self.adapter.headers(stream=False)
        if body is None:
            headers.pop("Content-Type", None)
        elif content_type is not None:
            headers["Content-Type"] = content_type
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        return HTTPRequest(method=method, url=url, headers=headers, body=body)

    def _malformed(self, what: str, data: Any, exc: Optional[BaseException] = None) -> MalformedResponseError:
        why = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
        shown = json.dumps(data, default=str)[:200] if not isinstance(data, str) else data[:200]
        return MalformedResponseError(
            f"{self.adapter.name} sent {what} that cannot be read{why}: {shown}", provider=self.adapter.name
        )


class OpenAIBatches(BatchAPI):
    """OpenAI's Files and Batches APIs (``/v1/files``, ``/v1/batches``)."""

    name = "openai"
    max_requests = 50_000
    #: 200 MB, counted in decimal megabytes to stay on the safe side
    max_bytes = 200_000_000
    uploads = True
    tagged = True

    _NATIVE: ClassVar[Dict[str, str]] = {
        "validating": "validating",
        "in_progress": "in_progress",
        "finalizing": "finalizing",
        "cancelling": "cancelling",
        "completed": "ended",
        "failed": "ended",
        "expired": "ended",
        "cancelled": "ended",
    }

    def endpoint(self, path: str) -> str:
        # The batch names the endpoint from the API's root, whatever the
        # base URL's own path ("/v1", or none on a compatible server).
        return "/v1" + path

    def item(self, custom_id: str, endpoint: str, body: Mapping[str, Any]) -> str:
        line = {"custom_id": custom_id, "method": "POST", "url": endpoint, "body": body}
        return self.adapter.encode(line).decode("utf-8")

    def upload(self, name: str, items: Sequence[str]) -> HTTPRequest:
        boundary = f"minillm-{uuid.uuid4().hex}"
        content = "".join(item + "\n" for item in items).encode("utf-8")
        body = b"".join(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'.encode(),
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'.encode(),
                b"Content-Type: application/jsonl\r\n\r\n",
                content,
                f"\r\n--{boundary}--\r\n".encode(),
            )
        )
        return self._request("POST", "/files", body, content_type=f"multipart/form-data; boundary={boundary}")

    def uploaded(self, data: Any) -> str:
        file_id = _text(data.get("id")) if isinstance(data, Mapping) else None
        if file_id is None:
            raise self._malformed("an upload's answer", data)
        return file_id

    def create(
        self, items: Sequence[str], *, endpoint: str, file_id: Optional[str], tags: Mapping[str, str]
    ) -> HTTPRequest:
        assert file_id is not None, "OpenAI batches are made of an uploaded file"
        body = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", "metadata": dict(tags)}
        return self._request("POST", "/batches", self.adapter.encode(body))

    def retrieve(self, batch_id: str) -> HTTPRequest:
        return self._request("GET", f"/batches/{path_segment(batch_id, 'batch id')}")

    def listing(self, after: Optional[str]) -> HTTPRequest:
        query = {"limit": 100, **({"after": after} if after else {})}
        return self._request("GET", f"/batches?{urlencode(query)}")

    def cancel(self, batch_id: str) -> HTTPRequest:
        return self._request("POST", f"/batches/{path_segment(batch_id, 'batch id')}/cancel", b"")

    def result_requests(self, remote: Remote) -> List[HTTPRequest]:
        return [
            self._request("GET", f"/files/{path_segment(file_id, 'file id')}/content") for file_id in remote.results
        ]

    def remote(self, data: Any) -> Remote:
        try:
            batch_id = data["id"]
            native = data["status"]
            if not isinstance(batch_id, str) or not isinstance(native, str):
                raise TypeError("id and status are strings")
            counts = data.get("request_counts") or {}
            metadata = data.get("metadata") or {}
            errors = (data.get("errors") or {}).get("data") or []
            failure = None
            if native == "failed":
                failure = "; ".join(_batch_error(error) for error in errors) or "the provider gave no reason"
            created = data.get("created_at")
            return Remote(
                id=batch_id,
                status=self._NATIVE.get(native, native if native != "ended" else "in_progress"),
                native=native,
                total=_count(counts.get("total")),
                succeeded=_count(counts.get("completed")),
                failed=_count(counts.get("failed")),
                created=float(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else None,
                metadata={str(k): str(v) for k, v in metadata.items()},
                results=tuple(
                    file_id
                    for file_id in (_text(data.get("output_file_id")), _text(data.get("error_file_id")))
                    if file_id
                ),
                failure=failure,
            )
        except SHAPE_ERRORS as exc:
            raise self._malformed("a batch", data, exc) from None

    def line(self, text: str) -> Line:
        try:
            data = json.loads(text)
            custom_id = data["custom_id"]
            if not isinstance(custom_id, str):
                raise TypeError("custom_id is not a string")
            response = data.get("response")
            error = data.get("error")
            if isinstance(response, Mapping):
                status = response.get("status_code")
                if isinstance(status, int) and 200 <= status < 300 and "body" in response:
                    return Line(custom_id, body=response["body"])
                return Line(custom_id, error=f"errored: HTTP {status}: {_error_text(response.get('body'))}")
            code = error.get("code") if isinstance(error, Mapping) else None
            if code == "batch_expired":
                return Line(custom_id, error=EXPIRED, attempted=False)
            if code == "batch_cancelled":
                return Line(custom_id, error=CANCELED, attempted=False)
            return Line(custom_id, error=f"errored: {_error_text(error)}")
        except (*SHAPE_ERRORS, ValueError) as exc:
            raise self._malformed("a line of results", text, exc) from None


def _batch_error(error: Any) -> str:
    if not isinstance(error, Mapping):
        return str(error)
    line = error.get("line")
    return (f"line {line}: " if line is not None else "") + _error_text(error)


class AnthropicBatches(BatchAPI):
    """Anthropic's Message Batches API (``/v1/messages/batches``).

    A batch carries no metadata: one whose creation was not answered is
    recognised only by being created after the request was sent with as
    many items -- and refused as ambiguous when more than one batch is.
    """

    name = "anthropic"
    max_requests = 100_000
    #: 256 MB, counted in decimal megabytes to stay on the safe side
    max_bytes = 256_000_000
    overhead = len('{"requests":[]}')

    _NATIVE: ClassVar[Dict[str, str]] = {"in_progress": "in_progress", "canceling": "cancelling", "ended": "ended"}

    def endpoint(self, path: str) -> str:
        return path

    def item(self, custom_id: str, endpoint: str, body: Mapping[str, Any]) -> str:
        return self.adapter.encode({"custom_id": custom_id, "params": body}).decode("utf-8")

    def create(
        self, items: Sequence[str], *, endpoint: str, file_id: Optional[str], tags: Mapping[str, str]
    ) -> HTTPRequest:
        body = ('{"requests":[' + ",".join(items) + "]}").encode("utf-8")
        return self._request("POST", "/v1/messages/batches", body)

    def retrieve(self, batch_id: str) -> HTTPRequest:
        return self._request("GET", f"/v1/messages/batches/{path_segment(batch_id, 'batch id')}")

    def listing(self, after: Optional[str]) -> HTTPRequest:
        query = {"limit": 100, **({"after_id": after} if after else {})}
        return self._request("GET", f"/v1/messages/batches?{urlencode(query)}")

    def cancel(self, batch_id: str) -> HTTPRequest:
        return self._request("POST", f"/v1/messages/batches/{path_segment(batch_id, 'batch id')}/cancel", b"")

    def result_requests(self, remote: Remote) -> List[HTTPRequest]:
        own = f"/v1/messages/batches/{path_segment(remote.id, 'batch id')}/results"
        url = remote.results[0] if remote.results else None
        # The results URL is followed only on the API's own host: the key
        # travels with the request, and never to a host it was not given for.
        if url is None or _origin(url) != _origin(self.base_url):
            request = self._request("GET", own)
        else:
            request = self._request("GET", url)
        headers = dict(request.headers)
        headers["Accept"] = "application/binary"
        return [attrs.evolve(request, headers=headers)]

    def remote(self, data: Any) -> Remote:
        try:
            batch_id = data["id"]
            native = data["processing_status"]
            if not isinstance(batch_id, str) or not isinstance(native, str):
                raise TypeError("id and processing_status are strings")
            counts = data.get("request_counts") or {}
            processing = _count(counts.get("processing"))
            failed = sum(_count(counts.get(name)) for name in ("errored", "canceled", "expired"))
            succeeded = _count(counts.get("succeeded"))
            url = _text(data.get("results_url"))
            return Remote(
                id=batch_id,
                status=self._NATIVE.get(native, native if native != "ended" else "in_progress"),
                native=native,
                total=processing + failed + succeeded,
                succeeded=succeeded,
                failed=failed,
                processing=processing,
                created=_rfc3339(data.get("created_at")),
                results=(url,) if url else (),
            )
        except SHAPE_ERRORS as exc:
            raise self._malformed("a message batch", data, exc) from None

    def line(self, text: str) -> Line:
        try:
            data = json.loads(text)
            custom_id = data["custom_id"]
            result = data["result"]
            if not isinstance(custom_id, str):
                raise TypeError("custom_id is not a string")
            kind = result["type"]
            if kind == "succeeded":
                return Line(custom_id, body=result["message"])
            if kind == "expired":
                return Line(custom_id, error=EXPIRED, attempted=False)
            if kind == "canceled":
                return Line(custom_id, error=CANCELED, attempted=False)
            return Line(custom_id, error=f"errored: {_error_text(result.get('error'))}")
        except (*SHAPE_ERRORS, ValueError) as exc:
            raise self._malformed("a line of results", text, exc) from None


def _origin(url: str) -> Tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.rsplit("@", 1)[-1].lower()


#: ``batch_protocol`` name -> its protocol
PROTOCOLS: Dict[str, Type[BatchAPI]] = {cls.name: cls for cls in (OpenAIBatches, AnthropicBatches)}


def api_for(adapter: Adapter, base_url: str, model: str) -> BatchAPI:
    """The batch protocol of ``adapter``'s host.

    :raises ConfigurationError: the host offers none that minillm speaks.
    """
    cls = PROTOCOLS.get(adapter.batch_protocol or "")
    if cls is None:
        offered = ", ".join(sorted(PROTOCOLS))
        raise ConfigurationError(
            f"{model} ({endpoint_of(base_url)}) has no provider batch API that minillm speaks (it speaks {offered}'s):"
            " use minillm.batch.run, which sends the same prompts as real-time requests"
        )
    return cls(adapter, base_url)
