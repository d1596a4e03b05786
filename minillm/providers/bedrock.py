"""AWS Bedrock's Converse API (``POST {base}/model/{modelId}/converse`` and
``/converse-stream``), for every model family Bedrock serves.

What differs from the other protocols:

- **The endpoint is regional.** ``https://bedrock-runtime.{region}.amazonaws.com``,
  the region from ``AWS_REGION`` (else ``AWS_DEFAULT_REGION``); ``base_url=``
  or ``BEDROCK_BASE_URL`` name another (a VPC endpoint, a proxy) and every
  one of them is Bedrock's own service. The model id is one percent-encoded
  path segment, as botocore encodes it (``:`` is ``%3A``, ``/`` in an ARN
  ``%2F``).
- **Two kinds of credential.** A Bedrock API key (``AWS_BEARER_TOKEN_BEDROCK``,
  or ``api_key=``) is a bearer token. Without one, each send is signed with
  AWS Signature Version 4 by :class:`SigV4Signer`
  (:func:`sigv4_headers`), with credentials from the standard AWS chain
  that botocore searches (the optional ``minillm[bedrock]`` extra, imported
  the first time a request is signed). A signature covers the moment,
  method, URL, headers and body of one send: it is made afresh for every
  send, retries included.
- **The stream is binary.** ConverseStream answers with AWS event stream
  messages (:mod:`minillm.eventstream`), each named by its ``:event-type``
  header; errors arrive as ``exception`` (or ``error``) messages. The usage
  comes in ``metadata`` *after* ``messageStop``: the stream is complete
  only once both have arrived.
- **Usage is split.** ``inputTokens`` leaves out the tokens read from and
  written to the prompt cache, which are reported beside it.

Nothing here branches on the model's family: ``thinking_budget`` always
becomes Anthropic's ``thinking`` field (the reasoning switch of the Claude
models, Bedrock's main reasoning family); other families take their own
fields through ``extra_body={"additionalModelRequestFields": {...}}``.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import os
import re
import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Type
from urllib.parse import quote, urlsplit

import attrs

from ..errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    InvalidArgumentError,
    RateLimitError,
    error_class_for_status,
)
from ..events import STREAM_DONE, Event, ProviderError, ReasoningDetail, ResponseInfo, ToolCallDelta
from ..eventstream import EventMessage, iter_eventstream
from ..extras import install_hint
from ..models import Chunk, Usage
from ..redaction import Redactor
from ..request import ChatRequest
from ..transports.base import HTTPRequest
from ..transports.credentials import NO_CREDENTIALS
from ..transports.credentials import Credentials as TransportCredentials
from .base import (
    OVERFLOW_MARKERS,
    SHAPE_ERRORS,
    Adapter,
    ProviderConfig,
    check_forced_tool,
    malformed_in_stream,
    require_object,
    token_count,
)
from .messages import Document, Image, arguments_object, content_parts, split_system

if TYPE_CHECKING:  # pragma: no cover
    from ..structured import OutputFormat

if TYPE_CHECKING:  # pragma: no cover
    from botocore.credentials import Credentials

__all__ = ["BedrockAdapter", "sigv4_headers", "usage_from_bedrock"]

#: The media type of a ConverseStream body.
EVENT_STREAM = "application/vnd.amazon.eventstream"

#: The signing name of the Bedrock runtime service (its host says
#: ``bedrock-runtime``; its signatures say ``bedrock``).
SIGNING_NAME = "bedrock"

#: Sent as ``maxTokens`` with a thinking budget when the caller gives none:
#: Anthropic's models need room for the answer beyond the thinking.
DEFAULT_MAX_TOKENS = 4096
#: The smallest thinking budget Anthropic's models accept.
MIN_THINKING_BUDGET = 1024

#: The longest model id Bedrock accepts (an ARN included).
MAX_MODEL_ID = 2048

FINISH_REASONS: Dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    # The model filled its context window while answering: the answer was
    # cut by length, and it is billed like any other.
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}

#: The kinds of AWS error, as Bedrock names them (``x-amzn-ErrorType``, an
#: exception frame's ``:exception-type``, an error frame's ``:error-code``),
#: without the ``Exception`` suffix and lower-cased -> the HTTP status that
#: botocore's service model gives them.
KIND_STATUS: Dict[str, int] = {
    "validation": 400,
    "incompletesignature": 400,
    "servicequotaexceeded": 400,
    "unrecognizedclient": 403,
    "invalidsignature": 403,
    "expiredtoken": 403,
    "accessdenied": 403,
    "missingauthenticationtoken": 403,
    "resourcenotfound": 404,
    "modeltimeout": 408,
    "throttling": 429,
    "toomanyrequests": 429,
    "modelnotready": 429,
    "internalserver": 500,
    "internalfailure": 500,
    "serviceunavailable": 503,
}

#: Kinds whose class is not their status's: a signature or a quota problem
#: is what it is, whatever status carried it (AWS has sent throttling and
#: signature errors with a 400).
KIND_CLASS: Dict[str, Type[APIError]] = {
    "incompletesignature": AuthenticationError,
    "unrecognizedclient": AuthenticationError,
    "invalidsignature": AuthenticationError,
    "expiredtoken": AuthenticationError,
    "accessdenied": AuthenticationError,
    "missingauthenticationtoken": AuthenticationError,
    "throttling": RateLimitError,
    "toomanyrequests": RateLimitError,
    "servicequotaexceeded": RateLimitError,
}

#: A region name: it becomes part of a host name, so nothing else.
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z0-9]+)+-\d+$")
#: Bedrock runtime hosts that name their region: the regional endpoints, their
#: FIPS twins, VPC interface endpoints, and the China partition.
_HOST_REGION = re.compile(
    r"(?:^|\.)bedrock-runtime(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z0-9]+)+-\d+)\.(?:vpce\.)?amazonaws\.com(?:\.cn)?$"
)

#: The fields of a Converse body that CountTokens takes: what makes up the input.
_COUNT_FIELDS = frozenset({"messages", "system", "toolConfig", "additionalModelRequestFields"})

#: The document formats Converse takes, by media type and by file name suffix.
_DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_DOCUMENT_SUFFIXES = {f".{name}": name for name in _DOCUMENT_FORMATS.values()}
#: What a document's name may not hold.
_DOCUMENT_NAME = re.compile(r"[^A-Za-z0-9 ()\[\]-]+")

#: The image formats Converse takes, by media type and by file name suffix.
_IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}

#: The type of the reasoning records kept on a response, to send back: a
#: reasoning block (text and its signature), or one the provider encrypted.
REASONING = "bedrock.reasoning"
REDACTED_REASONING = "bedrock.redacted_reasoning"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _kind(name: Any) -> Optional[str]:
    """``ThrottlingException``, ``throttlingException``,
    ``ThrottlingException:http://internal.amazon.com/coral/...`` and
    ``com.amazon.coral.service#ThrottlingException`` -> ``throttling``."""
    if not isinstance(name, str) or not name:
        return None
    kind: str = name.split(":", 1)[0].rsplit("#", 1)[-1].strip().lower()
    return kind[: -len("exception")] if kind.endswith("exception") else kind


def region_from_env() -> Optional[str]:
    """The region the environment names: ``AWS_REGION``, else ``AWS_DEFAULT_REGION``."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None  # neither is set


def _checked_region(region: str, where: str) -> str:
    if not _REGION.match(region):
        raise ConfigurationError(f"{where} is not an AWS region name (like 'us-east-1'): {region[:40]!r}")
    return region


def usage_from_bedrock(data: Any, service_tier: Any = None) -> Optional[Usage]:
    """Normalise a Converse ``usage`` object (and the ``serviceTier`` beside it).

    ``inputTokens`` leaves out the prompt cache, so ``prompt_tokens`` --
    every input token billed -- is ``inputTokens`` plus
    ``cacheReadInputTokens`` plus ``cacheWriteInputTokens``; ``cached_tokens``
    is the reads, ``cache_write_tokens`` the writes, of which
    ``cache_write_1h_tokens`` those ``cacheDetails`` lists with a one-hour
    ``ttl``. ``totalTokens`` is not read: the total is the sum of the
    parts. Other keys (``serverToolUsage``, the legacy ``...Count`` names)
    are ignored.
    """
    if not isinstance(data, Mapping) or not any(key in data for key in ("inputTokens", "outputTokens")):
        return None
    reads = _count(data.get("cacheReadInputTokens"))
    writes = _count(data.get("cacheWriteInputTokens"))
    prompt = _count(data.get("inputTokens")) + reads + writes
    completion = _count(data.get("outputTokens"))
    one_hour = 0
    details = data.get("cacheDetails")
    if isinstance(details, list):
        one_hour = sum(
            _count(detail.get("inputTokens"))
            for detail in details
            if isinstance(detail, Mapping) and detail.get("ttl") == "1h"
        )
    tier = service_tier.get("type") if isinstance(service_tier, Mapping) else None
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=reads,
        cache_write_tokens=writes,
        cache_write_1h_tokens=min(one_hour, writes),
        service_tier=tier if isinstance(tier, str) and tier else None,
    )


# -- AWS Signature Version 4 -----------------------------------------------------------------------

#: Headers a signature leaves out, as botocore does: hop-by-hop headers a
#: proxy may change or drop, and tracing headers added on the way.
_UNSIGNED = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _canonical_path(path: str) -> str:
    """The path as a SigV4 canonical URI: dot segments and empty segments
    removed (as AWS services read it), then percent-encoded once more --
    ``%3A`` in the path sent is ``%253A`` here, as AWS expects of every
    service but S3."""
    segments: List[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    normal = "/" + "/".join(segments)
    if path.endswith("/") and segments:
        normal += "/"
    return quote(normal, safe="/~")


def sigv4_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    access_key: str,
    secret_key: str,
    token: Optional[str],
    region: str,
    service: str,
    now: datetime,
) -> Dict[str, str]:
    """``headers`` with an AWS Signature Version 4 added (``X-Amz-Date``,
    ``X-Amz-Security-Token`` for temporary credentials, ``Authorization``),
    for exactly this method, URL, header set and body at ``now``.

    The algorithm is AWS's, as botocore's ``SigV4Auth`` implements it (the
    tests check every signature against it). It is done here rather than
    through botocore because botocore logs each canonical request at DEBUG
    level -- and that holds the session token.
    """
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    out = {name: value for name, value in headers.items() if name.lower() not in ("authorization", "x-amz-date")}
    out["X-Amz-Date"] = stamp
    if token:
        out = {name: value for name, value in out.items() if name.lower() != "x-amz-security-token"}
        out["X-Amz-Security-Token"] = token
    parts = urlsplit(url)
    signed = {name.lower(): " ".join(str(value).split()) for name, value in out.items()}
    signed = {name: value for name, value in signed.items() if name not in _UNSIGNED}
    if "host" not in signed:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"  # an IPv6 address
        if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
            host = f"{host}:{parts.port}"
        signed["host"] = host
    names = sorted(signed)
    signed_headers = ";".join(names)
    canonical = "\n".join(
        [
            method.upper(),
            _canonical_path(parts.path),
            "",  # a base URL has no query string
            "".join(f"{name}:{signed[name]}\n" for name in names),
            signed_headers,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), day), region), service), "aws4_request")
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
    return out


# -- request translation ---------------------------------------------------------------------------


def _cache_point(marker: Any) -> Dict[str, Any]:
    """The ``cachePoint`` block a ``cache_control`` marker stands for."""
    point: Dict[str, Any] = {"type": "default"}
    ttl = marker.get("ttl") if isinstance(marker, Mapping) else None
    if ttl in ("5m", "1h"):
        point["ttl"] = ttl
    return {"cachePoint": point}


def _marker(part: Any) -> Any:
    return part.get("cache_control") if isinstance(part, Mapping) else None


def _image(part: Image) -> Dict[str, Any]:
    """An image part as an ``image`` block: inline bytes (base64 in JSON, as
    every blob is) or an S3 location. Bedrock fetches no web URL."""
    if part.url is None:
        media_type = (part.media_type or "").lower()
        image_format = _IMAGE_FORMATS.get(media_type[len("image/") :]) if media_type.startswith("image/") else None
        if image_format is None:
            raise InvalidArgumentError(
                f"bedrock takes png, jpeg, gif and webp images, not {part.media_type!r} (the data URL's media type)"
            )
        return {"image": {"format": image_format, "source": {"bytes": part.data}}}
    if part.url.startswith("s3://"):
        suffix = os.path.splitext(urlsplit(part.url).path)[1].lower()
        image_format = _IMAGE_FORMATS.get(suffix[1:])
        if image_format is None:
            raise InvalidArgumentError(
                "an s3:// image for bedrock needs a .png, .jpg, .jpeg, .gif or .webp name (its format)"
            )
        return {"image": {"format": image_format, "source": {"s3Location": {"uri": part.url}}}}
    raise InvalidArgumentError(
        "bedrock takes images as data URLs (data:image/png;base64,...) or s3:// locations, not web URLs"
    )


def _document(part: Document) -> Dict[str, Any]:
    """A file part as a ``document`` block: inline bytes or an S3 location,
    in one of the formats Converse takes, with a name it accepts (letters,
    digits, spaces, hyphens, parentheses, brackets)."""
    name = _DOCUMENT_NAME.sub("-", os.path.splitext(part.filename or "")[0]).strip() or "document"
    if part.file_id is not None:
        raise InvalidArgumentError("bedrock: a file_id is OpenAI's; send the file's bytes or an s3:// file_url")
    if part.url is None:
        doc_format = _DOCUMENT_FORMATS.get((part.media_type or "").lower())
        source: Dict[str, Any] = {"bytes": part.data}
    elif part.url.startswith("s3://"):
        doc_format = _DOCUMENT_SUFFIXES.get(os.path.splitext(urlsplit(part.url).path)[1].lower())
        source = {"s3Location": {"uri": part.url}}
    else:
        raise InvalidArgumentError("bedrock takes files as data URLs or s3:// locations, not web URLs")
    if doc_format is None:
        raise InvalidArgumentError(
            "bedrock takes pdf, csv, doc, docx, xls, xlsx, html, txt and md documents, "
            f"not {part.media_type or part.url!r}"
        )
    return {"document": {"format": doc_format, "name": name[:200], "source": source}}


def _block(part: Any) -> Dict[str, Any]:
    if isinstance(part, Image):
        return _image(part)
    if isinstance(part, Document):
        return _document(part)
    return {"text": part}


def _blocks(content: Any) -> List[Dict[str, Any]]:
    """A message's content as Converse content blocks; a part's
    ``cache_control`` marker becomes a ``cachePoint`` right after the block
    made from it (what it marks is everything up to there)."""
    blocks: List[Dict[str, Any]] = []
    parts = content if isinstance(content, list) else [] if content is None else [content]
    for part in parts:
        made = [_block(p) for p in content_parts([part]) if p]
        blocks += made
        if made and _marker(part) is not None:
            blocks.append(_cache_point(_marker(part)))
    return blocks


def _reasoning_blocks(details: Any) -> List[Dict[str, Any]]:
    """The reasoning records of an assistant turn, as Bedrock sent them."""
    blocks: List[Dict[str, Any]] = []
    for detail in details or ():
        if not isinstance(detail, Mapping):
            continue
        if detail.get("type") == REASONING:
            text: Dict[str, Any] = {"text": detail.get("text", "")}
            if detail.get("signature"):
                text["signature"] = detail["signature"]
            blocks.append({"reasoningContent": {"reasoningText": text}})
        elif detail.get("type") == REDACTED_REASONING:
            blocks.append({"reasoningContent": {"redactedContent": detail.get("data", "")}})
    return blocks


class _Secrets:
    """The AWS secrets last used to sign, to mask in provider text. Never
    shown: its ``repr`` says nothing."""

    __slots__ = ("redactor",)

    def __init__(self) -> None:
        self.redactor = Redactor()

    def __repr__(self) -> str:
        return "<AWS secrets: hidden>"


class SigV4Signer(TransportCredentials):
    """Signs each request with SigV4 as it is sent: the exact method, URL,
    headers and body, for this moment. The AWS credential chain is searched
    once per route (it may read files, refresh an SSO session or ask an
    instance's metadata service), under a lock; botocore refreshes what it
    found (under its own) as it nears its expiry. The secrets last signed
    with are kept in ``secrets``, which the adapter masks in provider text."""

    def __init__(self, base_url: str, region: Optional[str], secrets: _Secrets) -> None:
        self._base_url = base_url
        self._region = region
        self._secrets = secrets
        self._lock = threading.Lock()
        self._credentials: Optional[Credentials] = None

    def authorize(self, request: HTTPRequest) -> HTTPRequest:
        """``request`` signed for now.

        :raises ConfigurationError: no region to sign for, no botocore, or
            no credentials in the AWS credential chain.
        """
        if self._region is None:
            raise ConfigurationError(
                f"cannot tell which AWS region {self._base_url!r} is in, to sign for it: set AWS_REGION"
            )
        region = _checked_region(self._region, "the region")
        frozen = self._frozen_credentials()
        headers = sigv4_headers(
            request.method,
            request.url,
            request.headers,
            request.body or b"",
            access_key=frozen.access_key,
            secret_key=frozen.secret_key,
            token=frozen.token,
            region=region,
            service=SIGNING_NAME,
            now=_utcnow(),
        )
        return attrs.evolve(request, headers=headers)

    def _frozen_credentials(self) -> Any:
        """This moment's credentials: the chain is searched once per
        adapter; botocore refreshes what it found (a role's, an SSO
        session's) when they near their expiry."""
        with self._lock:
            credentials = self._credentials
            if credentials is None:
                credentials = self._credentials = self._find_credentials()
        try:
            frozen = credentials.get_frozen_credentials()
        except Exception as exc:  # botocore's refresh failures: an expired SSO session, a role not assumable
            raise self._credential_error(exc) from None
        if not frozen.access_key or not frozen.secret_key:
            raise ConfigurationError(self._no_credentials())
        self._secrets.redactor = Redactor([frozen.secret_key, frozen.token])
        return frozen

    def _find_credentials(self) -> Credentials:
        try:
            import botocore.session
        except ImportError:
            raise ConfigurationError(self._no_credentials()) from None
        try:
            credentials = botocore.session.Session().get_credentials()
        except Exception as exc:  # a malformed config file, a profile that does not exist
            raise self._credential_error(exc) from None
        if credentials is None:
            raise ConfigurationError(self._no_credentials())
        return credentials

    @staticmethod
    def _no_credentials() -> str:
        return (
            "no credentials for bedrock: set AWS_BEARER_TOKEN_BEDROCK (a Bedrock API key), or AWS credentials "
            "that botocore finds (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an SSO login, "
            f"an instance role) with {install_hint('botocore')}"
        )

    @staticmethod
    def _credential_error(exc: BaseException) -> ConfigurationError:
        # botocore's messages name files, profiles and variables, never a
        # secret's value; the secrets the environment holds are masked all the same.
        hide = Redactor([os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("AWS_SESSION_TOKEN")])
        return ConfigurationError(
            hide.scrub(f"the AWS credentials for bedrock could not be had: {type(exc).__name__}: {exc}")
        )


class BedrockAdapter(Adapter):
    """``bedrock/<modelId>``: a base model id, an inference profile id
    (``us.anthropic.claude-sonnet-4-5-20250929-v1:0``) or an ARN.

    Pure data and parsing: signing, and the credential chain it needs, are
    its route's :class:`SigV4Signer`.
    """

    name = "bedrock"
    api = "converse"
    #: the form of the default: the region comes from the environment
    default_base_url = "https://bedrock-runtime.{region}.amazonaws.com"
    key_env: ClassVar[Tuple[str, ...]] = ("AWS_BEARER_TOKEN_BEDROCK",)
    base_url_env = "BEDROCK_BASE_URL"
    catalog_provider = "aws"
    own_endpoints = True
    stream_content_types: ClassVar[Tuple[str, ...]] = (EVENT_STREAM,)
    overflow_markers: ClassVar[Tuple[str, ...]] = (
        *OVERFLOW_MARKERS,
        "input is too long",
        "exceed context limit",
    )

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        #: what the route's signer last signed with, to mask in provider text
        self._secrets = _Secrets()
        host = urlsplit(config.base_url).hostname or ""
        match = _HOST_REGION.search(host)
        # The host's region is the one a signature must name; the
        # environment's serves a host that does not say (a proxy).
        self.region = match.group("region") if match else region_from_env()

    # -- configuration ----------------------------------------------------

    @classmethod
    def check_model(cls, model: str) -> None:
        # Any character can be percent-encoded, but a name with whitespace or
        # control characters is no model id, and "." or ".." would be a path
        # step once decoded.
        if (
            not model
            or len(model) > MAX_MODEL_ID
            or model in (".", "..")
            or any(ch.isspace() or not ch.isprintable() for ch in model)
        ):
            raise ConfigurationError(
                f"{model[:60]!r} is not a Bedrock model id (a model id, an inference profile id or an ARN: "
                f"printable, no whitespace, at most {MAX_MODEL_ID} characters)"
            )

    @classmethod
    def default_base(cls) -> str:
        region = region_from_env()
        if region is None:
            raise ConfigurationError(
                "no AWS region for bedrock: set AWS_REGION (or AWS_DEFAULT_REGION), "
                "or pass base_url= (or set BEDROCK_BASE_URL)"
            )
        return cls.default_base_url.format(region=_checked_region(region, "AWS_REGION"))

    @classmethod
    def missing_credentials(cls, key: Optional[str]) -> Optional[str]:
        """A Bedrock API key will do; without one, requests are signed, and
        that needs botocore. Whether the AWS credential chain finds
        credentials is only learnt when the first request is signed: the
        chain may read files, refresh an SSO session or ask an instance's
        metadata service -- work for a call, not for making a client."""
        if key or importlib.util.find_spec("botocore") is not None:
            return None
        return (
            "no credentials for bedrock: pass api_key= or set AWS_BEARER_TOKEN_BEDROCK (a Bedrock API key), "
            'or install botocore (pip install "minillm[bedrock]") to sign requests with your AWS credentials'
        )

    # -- requests ---------------------------------------------------------

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        model = quote(request.model, safe="-._~")
        return f"/model/{model}/" + ("converse-stream" if stream else "converse")

    def accept(self, *, stream: bool) -> str:
        return EVENT_STREAM if stream else "application/json"

    def count_request(self, request: ChatRequest) -> Optional[HTTPRequest]:
        """``POST /model/{modelId}/count-tokens`` with the Converse request's
        input (messages, system, tools, model-specific fields); signed like
        any other request. Not every model can be counted: the others answer
        400, and a budget then falls back to its estimate."""
        body = self.body(request, stream=False)
        converse = {key: value for key, value in body.items() if key in _COUNT_FIELDS}
        model = quote(request.model, safe="-._~")
        return self.post_json(f"/model/{model}/count-tokens", {"input": {"converse": converse}}, request)

    def parse_count(self, data: Any) -> int:
        return token_count(require_object(data)["inputTokens"])

    def generation_id(self, headers: Mapping[str, str]) -> Optional[str]:
        """Converse answers carry no id of their own: the request id AWS
        gives every request is the one its logs and support know."""
        return headers.get("x-amzn-requestid") or None

    def credentials(self) -> TransportCredentials:
        """A SigV4 signer over the AWS credential chain -- or nothing, for a
        Bedrock API key, which is in the Authorization header already."""
        if self.config.api_key:
            return NO_CREDENTIALS
        return SigV4Signer(self.config.base_url, self.region, self._secrets)

    def body(self, request: ChatRequest, *, stream: bool) -> Dict[str, Any]:
        system, turns = self.system(request)
        body: Dict[str, Any] = {"messages": self.messages(turns)}
        if system:
            body["system"] = system
        inference: Dict[str, Any] = {}
        budget = request.thinking_budget
        thinking = budget is not None and budget > 0
        if thinking:
            budget = max(budget or 0, MIN_THINKING_BUDGET)
        if request.max_tokens is not None:
            inference["maxTokens"] = request.max_tokens
        elif thinking:
            inference["maxTokens"] = DEFAULT_MAX_TOKENS + (budget or 0)
        if request.temperature is not None:
            inference["temperature"] = request.temperature
        if request.stop is not None:
            inference["stopSequences"] = list(request.stop)
        if inference:
            body["inferenceConfig"] = inference
        if thinking:
            body["additionalModelRequestFields"] = {"thinking": {"type": "enabled", "budget_tokens": budget}}
        if request.tools is not None:
            config: Dict[str, Any] = {"tools": self.tools(request.tools)}
            if request.tool_choice is not None:
                config["toolChoice"] = self.tool_choice(request.tool_choice)
            body["toolConfig"] = config
        if request.extra_body:
            for key, value in request.extra_body.items():
                # The caller's fields join the ones minillm set in the same
                # objects (the caller's win) rather than replace them all.
                if key in ("inferenceConfig", "additionalModelRequestFields", "toolConfig") and isinstance(
                    value, Mapping
                ):
                    body[key] = {**body.get(key, {}), **value}
                else:
                    body[key] = value
        return body

    def system(self, request: ChatRequest) -> Tuple[List[Dict[str, Any]], List[Mapping[str, Any]]]:
        """The system blocks, and the other turns. One text block -- unless
        a system part carries a ``cache_control`` marker: then a block per
        part, each marker a ``cachePoint`` after its part."""
        text, turns = split_system(request.messages, request.system)
        marked = any(
            message.get("role") in ("system", "developer")
            and isinstance(message.get("content"), list)
            and any(_marker(part) is not None for part in message["content"])
            for message in request.messages
        )
        if not marked:
            return ([{"text": text}] if text else []), turns
        blocks: List[Dict[str, Any]] = [{"text": request.system}] if request.system else []
        for message in request.messages:
            if message.get("role") in ("system", "developer"):
                blocks += _blocks(message.get("content"))
        return blocks, turns

    def constrain_output(self, body: Dict[str, Any], output: OutputFormat, request: ChatRequest) -> None:
        # Converse has no schema field of its own for every model: a forced tool.
        check_forced_tool(self.name, output, request)
        spec: Dict[str, Any] = {"name": output.name, "inputSchema": {"json": output.schema}}
        if output.description:  # Bedrock refuses an empty one
            spec["description"] = output.description
        config = body.setdefault("toolConfig", {})
        config["tools"] = [*config.get("tools", ()), {"toolSpec": spec}]
        config["toolChoice"] = {"tool": {"name": output.name}}

    @staticmethod
    def tools(tools: Iterable[Mapping[str, Any]]) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        for tool in tools:
            function = tool["function"]
            spec: Dict[str, Any] = {
                "name": function["name"],
                "inputSchema": {"json": function.get("parameters") or {"type": "object", "properties": {}}},
            }
            if function.get("description"):  # Bedrock refuses an empty one
                spec["description"] = function["description"]
            if isinstance(function.get("strict"), bool):
                spec["strict"] = function["strict"]
            out.append({"toolSpec": spec})
            if tool.get("cache_control") is not None:
                out.append(_cache_point(tool["cache_control"]))
        return out

    @staticmethod
    def tool_choice(choice: Any) -> Dict[str, Any]:
        if choice == "auto":
            return {"auto": {}}
        if choice == "required":
            return {"any": {}}
        if choice == "none":
            # Converse has no "none"; leaving the tools out is not the same
            # (a conversation with tool calls needs them declared).
            raise InvalidArgumentError(
                "bedrock's Converse API has no tool_choice 'none': leave tools out of the call instead"
            )
        return {"tool": {"name": choice["function"]["name"]}}

    def messages(self, turns: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
        """OpenAI-shaped turns as Converse messages. Tool results become
        ``toolResult`` blocks of a user turn; consecutive turns of one role
        share a message, as Converse wants the roles to alternate."""
        out: List[Dict[str, Any]] = []
        for turn in turns:
            role = turn["role"]
            if role == "tool":
                content = turn.get("content")
                results = [block for block in _blocks(content) if "cachePoint" not in block]
                blocks: List[Dict[str, Any]] = [
                    {"toolResult": {"toolUseId": str(turn["tool_call_id"]), "content": results or [{"text": ""}]}}
                ]
                parts = content if isinstance(content, list) else []
                marks = [_marker(part) for part in parts if _marker(part) is not None]
                if marks:  # a cache point cannot be inside a tool result: it follows it
                    blocks.append(_cache_point(marks[-1]))
                role = "user"
            elif role == "assistant":
                blocks = _reasoning_blocks(turn.get("reasoning_details")) + _blocks(turn.get("content"))
                for call in turn.get("tool_calls") or ():
                    function = call.get("function") or {}
                    blocks.append(
                        {
                            "toolUse": {
                                "toolUseId": str(call.get("id")),
                                "name": function.get("name"),
                                "input": arguments_object(function.get("arguments"), call.get("id")),
                            }
                        }
                    )
            else:
                blocks = _blocks(turn.get("content"))
                role = "user"
            if out and out[-1]["role"] == role:
                out[-1]["content"] += blocks
            else:
                out.append({"role": role, "content": blocks})
        return out

    # -- responses --------------------------------------------------------

    def stream_events(self, body: Iterable[bytes]) -> Iterator[Event]:
        """Events from a ConverseStream body (AWS event stream messages, in
        byte pieces split anywhere)."""
        decoder = _Decoder(self)
        for message in iter_eventstream(body):
            yield from decoder.message(message)
            if decoder.ended:
                return

    def body_events(self, data: Any) -> Iterator[Event]:
        """A Converse answer: the whole message, its stop reason and usage."""
        require_object(data)
        content = data["output"]["message"]["content"]
        if not isinstance(content, list):
            raise TypeError("the message's content is not a list")
        usage = usage_from_bedrock(data["usage"], data.get("serviceTier"))
        if usage is None:
            raise TypeError("the usage has no token counts")
        yield ResponseInfo(model=self.config.model)
        tools = 0
        for block in content:
            if not isinstance(block, dict):
                raise TypeError(f"a content block is a JSON {type(block).__name__}, not an object")
            if "text" in block:
                if block["text"]:
                    yield Chunk(block["text"], "", None, None)
            elif "toolUse" in block:
                call = block["toolUse"]
                yield ToolCallDelta(
                    index=tools,
                    id=call.get("toolUseId"),
                    name=call.get("name"),
                    arguments=json.dumps(call.get("input") or {}),
                )
                tools += 1
            elif "reasoningContent" in block:
                reasoning = block["reasoningContent"]
                if "reasoningText" in reasoning:
                    text = reasoning["reasoningText"].get("text", "")
                    if text:
                        yield Chunk("", text, None, None)
                    yield ReasoningDetail(
                        {"type": REASONING, "text": text, "signature": reasoning["reasoningText"].get("signature", "")}
                    )
                elif "redactedContent" in reasoning:
                    yield ReasoningDetail({"type": REDACTED_REASONING, "data": reasoning["redactedContent"]})
            # citations, images and blocks yet unknown carry nothing to accumulate
        reason = data.get("stopReason")
        yield Chunk("", "", FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else None, usage)
        yield STREAM_DONE

    # -- errors -----------------------------------------------------------

    def error_message(self, error: Any) -> Optional[str]:
        if isinstance(error, dict) and isinstance(error.get("Message"), str) and error["Message"]:
            return str(error["Message"])  # some AWS front ends capitalise it
        return super().error_message(error)

    def error_class(self, status: int, headers: Mapping[str, str], error: Any) -> Type[APIError]:
        kind = _kind(headers.get("x-amzn-errortype"))
        if kind is None and isinstance(error, dict):
            kind = _kind(error.get("__type"))
        cls = KIND_CLASS.get(kind or "")
        return cls if cls is not None else error_class_for_status(status)

    def in_band_error_class(self, event: ProviderError) -> Type[APIError]:
        # The same kinds as an HTTP error's: a quota exceeded mid-stream is a
        # rate limit, as it is when it comes back as a status.
        cls = KIND_CLASS.get(_kind(event.type) or "")
        return cls if cls is not None else super().in_band_error_class(event)

    def api_error(
        self, status: int, headers: Mapping[str, str], body: bytes, endpoint: str, redactor: Redactor
    ) -> APIError:
        return super().api_error(status, headers, self._hide_bytes(body), endpoint, redactor)

    def malformed(self, status: int, body: bytes, endpoint: str, redactor: Redactor, why: str) -> APIError:
        return super().malformed(status, self._hide_bytes(body), endpoint, redactor, why)

    def _hide(self, text: str) -> str:
        """``text`` without the AWS secrets last signed with (the route's
        redactor knows the API key, not these)."""
        return self._secrets.redactor.scrub(text)

    def _hide_bytes(self, body: bytes) -> bytes:
        text = body.decode("utf-8", "replace")
        hidden = self._hide(text)
        return body if hidden == text else hidden.encode("utf-8")

    def stream_exception(self, kind_name: str, payload: Any) -> ProviderError:
        """The error event for an ``exception`` message of the stream."""
        data = payload if isinstance(payload, dict) else {}
        message = self._hide(self.error_message(data) or f"bedrock reported {kind_name}")
        kind = _kind(kind_name) or ""
        status: Optional[int] = KIND_STATUS.get(kind)
        if kind == "modelstreamerror":
            # The model failed while streaming (HTTP 424 in AWS's model):
            # the status the model itself answered with says how, else it
            # is a failure of the service -- worth another try before any
            # output, like any 500.
            original = data.get("originalStatusCode")
            valid = isinstance(original, int) and not isinstance(original, bool) and 400 <= original <= 599
            status = original if valid else 500
        return ProviderError(
            message=message,
            code=kind_name,
            type=kind_name,
            overflow=self.is_overflow(data, message),
            status=status,
            body=self._secrets.redactor.scrub_obj(data) if data else {"message": message},
        )


class _Decoder:
    """The state of one ConverseStream's decoding: its blocks (by index),
    the stop reason and the usage. The terminal signal goes out once both
    ``messageStop`` and ``metadata`` have arrived, in whichever order."""

    def __init__(self, adapter: BedrockAdapter) -> None:
        self.adapter = adapter
        #: contentBlockIndex -> what is known of the block
        self.blocks: Dict[int, Dict[str, Any]] = {}
        self.tools = 0
        self.stop_reason: Optional[str] = None
        self.stopped = False
        self.usage: Optional[Usage] = None
        self.identified = False
        #: nothing more is read: the answer is complete, or an error ended it
        self.ended = False

    def message(self, message: EventMessage) -> Iterator[Event]:
        headers = message.headers
        kind = headers.get(":message-type")
        if kind == "exception":
            name = headers.get(":exception-type")
            try:
                payload = self.json(message)
            except ValueError:  # not JSON: its text is the message
                payload = {"message": message.payload.decode("utf-8", "replace")}
            yield self.adapter.stream_exception(name if isinstance(name, str) else "exception", payload)
            self.ended = True
            return
        if kind == "error":
            code = headers.get(":error-code")
            text = headers.get(":error-message")
            yield self.adapter.stream_exception(
                code if isinstance(code, str) else "error", {"message": text if isinstance(text, str) else ""}
            )
            self.ended = True
            return
        if kind != "event":
            return  # a message type yet unknown carries nothing to accumulate
        event_type = headers.get(":event-type")
        try:
            data = require_object(self.json(message), "an event")
            if event_type == "contentBlockDelta":
                yield from self.delta(data["contentBlockIndex"], data["delta"])
            elif event_type == "contentBlockStart":
                yield from self.start(data["contentBlockIndex"], data.get("start") or {})
            elif event_type == "contentBlockStop":
                yield from self.stop(data["contentBlockIndex"])
            elif event_type == "messageStart":
                yield from self.identify()
            elif event_type == "messageStop":
                yield from self.identify()
                reason = data.get("stopReason")
                self.stop_reason = reason if isinstance(reason, str) else None
                self.stopped = True
                yield from self.finish()
            elif event_type == "metadata":
                yield from self.identify()
                usage = usage_from_bedrock(data["usage"], data.get("serviceTier"))
                if usage is None:
                    raise TypeError("the metadata's usage has no token counts")
                self.usage = usage
                yield from self.finish()
            # events yet unknown carry nothing to accumulate
        except SHAPE_ERRORS as exc:
            yield malformed_in_stream(exc, self.adapter._hide(message.payload.decode("utf-8", "replace")))
            self.ended = True

    @staticmethod
    def json(message: EventMessage) -> Any:
        payload = message.payload
        return json.loads(payload) if payload.strip() else {}

    def identify(self) -> Iterator[Event]:
        if not self.identified:
            self.identified = True
            yield ResponseInfo(model=self.adapter.config.model)

    def start(self, index: int, start: Mapping[str, Any]) -> Iterator[Event]:
        yield from self.identify()
        tool = start.get("toolUse")
        if isinstance(tool, Mapping):
            block = self.blocks[index] = {"tool": self.tools, "arguments": False}
            self.tools += 1
            yield ToolCallDelta(index=block["tool"], id=tool.get("toolUseId"), name=tool.get("name"))

    def delta(self, index: int, delta: Mapping[str, Any]) -> Iterator[Event]:
        yield from self.identify()
        if "text" in delta:
            if delta["text"]:
                yield Chunk(delta["text"], "", None, None)
        elif "toolUse" in delta:
            block = self.blocks.get(index)
            if block is None or "tool" not in block:
                raise ValueError(f"a tool call's input arrived for block {index}, which no toolUse started")
            fragment = delta["toolUse"]["input"]
            if fragment:
                block["arguments"] = True
                yield ToolCallDelta(index=block["tool"], arguments=fragment)
        elif "reasoningContent" in delta:
            reasoning = delta["reasoningContent"]
            block = self.blocks.setdefault(index, {"text": [], "signature": [], "redacted": []})
            if reasoning.get("text"):
                block["text"].append(reasoning["text"])
                yield Chunk("", reasoning["text"], None, None)
            if reasoning.get("signature"):
                block["signature"].append(reasoning["signature"])
            if reasoning.get("redactedContent"):
                block["redacted"].append(reasoning["redactedContent"])
        # citations and deltas yet unknown carry nothing to accumulate

    def stop(self, index: int) -> Iterator[Event]:
        block = self.blocks.pop(index, None)
        if block is None:
            return
        if "tool" in block:
            if not block["arguments"]:
                # A tool without arguments streams no input: that is {}.
                yield ToolCallDelta(index=block["tool"], arguments="{}")
        elif block["redacted"]:
            yield ReasoningDetail({"type": REDACTED_REASONING, "data": "".join(block["redacted"])})
        elif block["text"] or block["signature"]:
            yield ReasoningDetail(
                {"type": REASONING, "text": "".join(block["text"]), "signature": "".join(block["signature"])}
            )

    def finish(self) -> Iterator[Event]:
        """The final chunk (finish reason and usage) and the terminal
        signal, once both the stop and the usage are here."""
        if not self.stopped or self.usage is None:
            return
        reason = self.stop_reason
        yield Chunk("", "", FINISH_REASONS.get(reason, "stop") if reason else "stop", self.usage)
        yield STREAM_DONE
        self.ended = True
