"""The provider registry: provider name -> adapter class.

Adding a provider means one module and one entry here. Nothing outside the
adapters branches on the provider's name.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple, Type

from ..errors import ConfigurationError
from .base import Adapter, ProviderConfig
from .openai import OpenAIAdapter
from .openrouter import OpenRouterAdapter
from .xai import XAIAdapter

__all__ = ["Adapter", "PROVIDERS", "ProviderConfig", "adapter_class", "split_model"]

#: provider name -> adapter class
PROVIDERS: Dict[str, Type[Adapter]] = {cls.name: cls for cls in (OpenAIAdapter, OpenRouterAdapter, XAIAdapter)}

#: the values of ``api=`` each provider understands (None picks per model)
APIS: Dict[str, Tuple[str, ...]] = {"openai": ("chat",)}


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


def adapter_class(provider: str, api: Optional[str] = None) -> Type[Adapter]:
    """The adapter class for ``provider`` (and ``api``).

    :raises ConfigurationError: unknown provider, or an ``api`` it does not have.
    """
    cls = PROVIDERS.get(provider)
    if cls is None:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigurationError(f"unknown provider {provider!r}; known providers: {known}")
    if api is not None:
        supported = APIS.get(provider, ())
        if api not in supported:
            choices = ", ".join(repr(a) for a in supported) or "none"
            raise ConfigurationError(f"provider {provider!r} does not offer api={api!r} (supported: {choices})")
    return cls
