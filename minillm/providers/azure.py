"""Azure OpenAI: OpenAI's models deployed on an Azure resource of your own,
over Chat Completions (by deployment, with a dated API version, or the GA
``v1`` API) and the Responses API.

The endpoint is the resource's URL (``https://<resource>.openai.azure.com``)
from ``base_url=``, else ``AZURE_OPENAI_ENDPOINT``; there is no default, so
without either the route is unusable and says what to set. The key goes in
the ``api-key`` header. The API version comes from
``AZURE_OPENAI_API_VERSION``, else ``OPENAI_API_VERSION`` (which
openai-python's ``AzureOpenAI`` reads), else the current GA dated version:

- a dated version (``2024-10-21``, ``2025-04-01-preview``):
  ``POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...``;
- ``v1``: ``POST {endpoint}/openai/v1/chat/completions`` with the deployment
  as the body's ``model``.

``api="responses"`` is always the v1 API, ``POST {endpoint}/openai/v1/responses``:
the dated GA version has no Responses API.

Every Azure endpoint is Azure's own service: a key is required and usage is
priced by the catalog as provider ``azure``, with the deployment name as the
model -- so name deployments after their model (``gpt-4o-mini``) or pass
``price=``.
"""

from __future__ import annotations

import os
import re
from typing import ClassVar, Optional, Tuple

from ..errors import ConfigurationError
from ..request import ChatRequest
from .base import ProviderConfig, path_segment
from .openai_chat import ChatCompletionsAdapter
from .openai_responses import ResponsesAdapter

__all__ = ["DEFAULT_API_VERSION", "AzureAdapter", "AzureResponsesAdapter", "api_version"]

#: The current GA dated version of the data-plane inference API.
DEFAULT_API_VERSION = "2024-10-21"
#: The GA API without dated versions: the deployment goes in the body.
V1 = "v1"
ENDPOINT_ENV = "AZURE_OPENAI_ENDPOINT"
#: Where the API version is read from, in order.
API_VERSION_ENV: Tuple[str, ...] = ("AZURE_OPENAI_API_VERSION", "OPENAI_API_VERSION")

#: A version as it may stand in a query string, as it is.
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: What a resource URL given with the API's own path ends with (as
#: openai-python's ``base_url`` takes it): the paths below add it again.
_API_ROOTS = ("/openai/v1", "/openai")


def api_version() -> str:
    """The API version the environment asks for, else :data:`DEFAULT_API_VERSION`.

    :raises ConfigurationError: a version that cannot stand in a query string.
    """
    for name in API_VERSION_ENV:
        value = os.environ.get(name, "").strip()
        if value:
            if not _VERSION.match(value):
                raise ConfigurationError(
                    f"{name} must be an API version such as {DEFAULT_API_VERSION!r} or 'v1', not {value!r}"
                )
            return value
    return DEFAULT_API_VERSION


class AzureHost:
    """What both Azure protocols share: the resource's endpoint, the
    ``api-key`` header, deployment names and the catalog's provider."""

    config: ProviderConfig
    name = "azure"
    #: none: every resource has its own (see :meth:`default_base`)
    default_base_url = ""
    key_env: ClassVar[Tuple[str, ...]] = ("AZURE_OPENAI_API_KEY",)
    base_url_env: ClassVar[Optional[str]] = None
    catalog_provider: ClassVar[Optional[str]] = "azure"
    own_endpoints = True
    key_header: ClassVar[Tuple[str, str]] = ("api-key", "{key}")
    #: none: a resource's deployments are named by its owner
    models_path: ClassVar[Optional[str]] = None

    @classmethod
    def default_base(cls) -> str:
        endpoint = os.environ.get(ENDPOINT_ENV, "").strip()
        if not endpoint:
            raise ConfigurationError(
                "no Azure OpenAI endpoint: pass base_url= (your resource's URL, "
                f"https://<resource>.openai.azure.com) or set {ENDPOINT_ENV}"
            )
        return endpoint

    @classmethod
    def check_model(cls, model: str) -> None:
        # Classic requests put the deployment in the URL's path.
        path_segment(model, "Azure deployment name")

    def url(self, path: str) -> str:
        root = self.config.base_url.rstrip("/")
        for suffix in _API_ROOTS:
            if root.endswith(suffix):
                root = root[: -len(suffix)]
                break
        return root + path


class AzureAdapter(AzureHost, ChatCompletionsAdapter):
    """``azure/<deployment>``: Chat Completions.

    A dated version gets ``max_tokens``, the field the GA dated API
    documents; ``v1`` gets ``max_completion_tokens``, which reasoning
    deployments (o-series, gpt-5) require -- use ``v1`` for them.
    ``cache_control`` markers are left out of messages (Azure caches
    prompts on its own and validates content parts). A stream's first
    chunk carries only ``prompt_filter_results``, with no choices and an
    empty id and model; it says nothing and is skipped.
    """

    accepts_cache_control = False

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.api_version = api_version()
        self.max_tokens_field = "max_completion_tokens" if self.api_version == V1 else "max_tokens"  # type: ignore[misc]

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        if self.api_version == V1:
            return "/openai/v1/chat/completions"
        return f"/openai/deployments/{request.model}/chat/completions?api-version={self.api_version}"


class AzureResponsesAdapter(AzureHost, ResponsesAdapter):
    """``azure/<deployment>`` with ``api="responses"``: the v1 Responses API."""

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        return "/openai/v1/responses"
