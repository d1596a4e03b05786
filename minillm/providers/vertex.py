"""Google Vertex AI: Gemini and Claude, through the platform companies buy
them on.

``vertex/<model>``: a model whose name starts with ``claude`` is Anthropic's
Messages API on Vertex (``claude-sonnet-4-5@20250929``), any other is
Gemini. The endpoint is computed from ``GOOGLE_CLOUD_PROJECT`` and
``GOOGLE_CLOUD_LOCATION`` (``global`` when unset):
``https://{host}/v1/projects/{project}/locations/{location}``, where the
host is ``aiplatform.googleapis.com`` for ``global``,
``aiplatform.{us|eu}.rep.googleapis.com`` for the multi-regions and
``{location}-aiplatform.googleapis.com`` for a region. ``base_url=`` (or
``VERTEX_BASE_URL``) replaces all of that prefix.

Credentials: a bearer token, ``api_key=`` or ``VERTEX_ACCESS_TOKEN``
(``gcloud auth print-access-token``); else application-default credentials
through google-auth (``pip install "minillm[vertex]"``), imported the first
time a Vertex request is sent, refreshed before they expire, and added at
each send -- a retry an hour later carries a fresh token.

The bodies are those of the Gemini API and of Anthropic's Messages API,
with Vertex's differences: Claude's ``anthropic_version`` goes in the body
(``vertex-2023-10-16``) and its model in the URL, not the body. Usage,
streams and errors read exactly as on the providers' own APIs. Prices come
from the catalog's ``google`` entries (Claude on Vertex included).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Any, ClassVar, Dict, Optional, Tuple

import attrs

from ..errors import ConfigurationError
from ..extras import install_hint
from ..request import ChatRequest
from ..transports.base import HTTPRequest
from ..transports.credentials import NO_CREDENTIALS, Credentials
from .anthropic import COUNT_FIELDS, AnthropicAdapter
from .base import Adapter, path_segment
from .gemini import GeminiAdapter, _bare

__all__ = ["VertexClaudeAdapter", "VertexGeminiAdapter", "vertex_base_url"]

#: The scope a token needs for Vertex AI.
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"

#: Where Anthropic's version goes on Vertex: the body, with this value.
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"

_MULTI_REGIONS = ("us", "eu")


def vertex_base_url(project: str, location: str) -> str:
    """The Vertex endpoint prefix for ``project`` in ``location``."""
    path_segment(project, "Google Cloud project")
    path_segment(location, "Google Cloud location")
    if location == "global":
        host = "aiplatform.googleapis.com"
    elif location in _MULTI_REGIONS:
        host = f"aiplatform.{location}.rep.googleapis.com"
    else:
        host = f"{location}-aiplatform.googleapis.com"
    return f"https://{host}/v1/projects/{project}/locations/{location}"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent missing, or blocked in sys.modules
        return False


class _ApplicationDefault(Credentials):
    """Application-default credentials, shared by every Vertex route of the
    process: found once, refreshed under a lock when they are about to
    expire (google-auth's ``valid`` allows for clock skew). Each request
    carries the access token as it is sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._credentials: Any = None

    def authorize(self, request: HTTPRequest) -> HTTPRequest:
        headers = dict(request.headers)
        headers["Authorization"] = f"Bearer {self.token()}"
        return attrs.evolve(request, headers=headers)

    def token(self) -> str:
        with self._lock:
            try:
                import google.auth
                import google.auth.transport.requests
            except ImportError:
                raise ConfigurationError(
                    f"no credentials for vertex: set VERTEX_ACCESS_TOKEN, or {install_hint('google.auth')} "
                    "to use application-default credentials"
                ) from None
            try:
                if self._credentials is None:
                    self._credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
                if not self._credentials.valid:
                    self._credentials.refresh(google.auth.transport.requests.Request())
                token = self._credentials.token
            except Exception as exc:  # DefaultCredentialsError, RefreshError, a transport failure
                # Its message names files and accounts, never a token; its
                # chain may hold a response body, so it is not kept.
                raise ConfigurationError(
                    f"vertex application-default credentials failed ({type(exc).__name__}: {exc}); "
                    "run `gcloud auth application-default login` or set VERTEX_ACCESS_TOKEN"
                ) from None
        if not isinstance(token, str) or not token:
            raise ConfigurationError("vertex application-default credentials gave no access token")
        return token

    def forget(self) -> None:
        with self._lock:
            self._credentials = None


APPLICATION_DEFAULT = _ApplicationDefault()


class VertexHost(Adapter):
    """What Vertex adds to either protocol: its endpoint, its bearer token.
    (Abstract: mixed in before the protocol's adapter.)"""

    name = "vertex"
    default_base_url = ""
    key_env: ClassVar[Tuple[str, ...]] = ("VERTEX_ACCESS_TOKEN",)
    base_url_env = "VERTEX_BASE_URL"
    own_endpoints = True
    catalog_provider = "google"
    key_header = ("Authorization", "Bearer {key}")
    #: none in the generation API (the publisher's catalog is another API)
    models_path: ClassVar[Optional[str]] = None

    @classmethod
    def default_base(cls) -> str:
        project = os.environ.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            raise ConfigurationError(
                "no Google Cloud project for vertex: set GOOGLE_CLOUD_PROJECT (and GOOGLE_CLOUD_LOCATION, "
                "default 'global'), or pass base_url="
            )
        return vertex_base_url(project, os.environ.get("GOOGLE_CLOUD_LOCATION") or "global")

    @classmethod
    def missing_credentials(cls, key: Optional[str]) -> Optional[str]:
        if key or _installed("google.auth"):
            return None
        return (
            "no credentials for vertex: pass api_key= (an access token), set VERTEX_ACCESS_TOKEN, or pip install "
            '"minillm[vertex]" to use application-default credentials'
        )

    def credentials(self) -> Credentials:
        # A token the caller gave is in the headers already.
        return NO_CREDENTIALS if self.config.api_key else APPLICATION_DEFAULT


class VertexGeminiAdapter(VertexHost, GeminiAdapter):
    """``vertex/<gemini model>``: ``generateContent`` under ``publishers/google``."""

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        return "/publishers/google" + super().path(request, stream=stream)

    def count_request(self, request: ChatRequest) -> Optional[HTTPRequest]:
        """``countTokens`` under ``publishers/google``: Vertex takes the
        prompt's fields themselves, not wrapped in a ``generateContentRequest``."""
        model = path_segment(_bare(request.model))
        return self.post_json(f"/publishers/google/models/{model}:countTokens", self.count_body(request), request)


class VertexClaudeAdapter(VertexHost, AnthropicAdapter):
    """``vertex/claude-...``: ``rawPredict`` under ``publishers/anthropic``."""

    only_models: ClassVar[Tuple[str, ...]] = ("claude",)
    #: Vertex batches are batch prediction jobs over Cloud Storage, not
    #: Anthropic's Message Batches
    batch_protocol: ClassVar[Optional[str]] = None

    @classmethod
    def check_model(cls, model: str) -> None:
        path_segment(model)  # it is part of the URL here

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        model = path_segment(request.model)
        return f"/publishers/anthropic/models/{model}:" + ("streamRawPredict" if stream else "rawPredict")

    def host_headers(self) -> Dict[str, str]:
        return {}  # the version travels in the body on Vertex

    def body(self, request: ChatRequest, *, stream: bool) -> Dict[str, Any]:
        body = super().body(request, stream=stream)
        body.pop("model", None)
        return {"anthropic_version": VERTEX_ANTHROPIC_VERSION, **body}

    def count_request(self, request: ChatRequest) -> Optional[HTTPRequest]:
        """``count-tokens:rawPredict``, one endpoint for every Claude model:
        the model goes in the body here, beside the version."""
        body = AnthropicAdapter.body(self, request, stream=False)
        counted = {key: value for key, value in body.items() if key in COUNT_FIELDS}
        return self.post_json(
            "/publishers/anthropic/models/count-tokens:rawPredict",
            {"anthropic_version": VERTEX_ANTHROPIC_VERSION, **counted},
            request,
        )
