"""The provider registry: provider name -> adapter class.

Adding a provider means one module and one entry here. Nothing outside the
adapters branches on the provider's name.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple, Type

from ..errors import ConfigurationError
from .anthropic import AnthropicAdapter
from .base import Adapter, ProviderConfig
from .gemini import GeminiAdapter
from .local import LocalAdapter
from .ollama import OllamaAdapter
from .openai import OpenAIAdapter, OpenAIResponsesAdapter
from .openrouter import OpenRouterAdapter, OpenRouterResponsesAdapter
from .xai import XAIAdapter

__all__ = ["APIS", "Adapter", "PROVIDERS", "ProviderConfig", "adapter_class", "split_model"]

#: provider name -> its protocols, the default first (``api=`` picks another)
APIS: Dict[str, Tuple[Type[Adapter], ...]] = {
    "openai": (OpenAIAdapter, OpenAIResponsesAdapter),
    "openrouter": (OpenRouterAdapter, OpenRouterResponsesAdapter),
    "xai": (XAIAdapter,),
    "anthropic": (AnthropicAdapter,),
    "gemini": (GeminiAdapter,),
    "ollama": (OllamaAdapter,),
    "local": (LocalAdapter,),
}

#: provider name -> its default adapter class
PROVIDERS: Dict[str, Type[Adapter]] = {name: classes[0] for name, classes in APIS.items()}


def split_model(model: str) -> Tuple[str, str]:
    """``"provider/model-name"`` -> ``("provider", "model-name")``.

    :raises ConfigurationError: not of that form.
    """
    if not isinstance(model, str) or "/" not in model:
        raise ConfigurationError(
            f"model must be 'provider/model-name' (for example 'openai/gpt-4o-mini'), not {model!r}"
        )
    provider, _, name = model.partition("/")
    if not provider or not name:
        raise ConfigurationError(f"model must be 'provider/model-name', not {model!r}")
    return provider, name


def adapter_class(provider: str, api: Optional[str] = None, model: str = "") -> Type[Adapter]:
    """The adapter class for ``provider``: the one named by ``api``, else the
    one that alone serves ``model``, else the provider's default.

    :raises ConfigurationError: unknown provider, or an ``api`` it does not have.
    """
    classes = APIS.get(provider)
    if classes is None:
        known = ", ".join(sorted(APIS))
        raise ConfigurationError(f"unknown provider {provider!r}; known providers: {known}")
    if api is not None:
        for cls in classes:
            if cls.api == api:
                return cls
        choices = ", ".join(repr(cls.api) for cls in classes)
        raise ConfigurationError(f"provider {provider!r} does not offer api={api!r} (it offers {choices})")
    for cls in classes:
        if any(model.startswith(prefix) for prefix in cls.only_models):
            return cls
    return classes[0]
