"""The provider registry: provider name -> adapter class.

Adding a provider means one module and one entry here. Nothing outside the
adapters branches on the provider's name. An adapter's module is imported
the first time its provider is used: a client of one provider never loads
the others.
"""

from __future__ import annotations

import functools
import importlib
from typing import Dict, Iterator, Mapping, Optional, Tuple, Type

from ..errors import ConfigurationError
from .base import Adapter, ProviderConfig

__all__ = ["APIS", "Adapter", "PROVIDERS", "ProviderConfig", "adapter_class", "split_model"]

#: provider name -> its protocols as "module:class", the default first
#: (``api=`` picks another)
_REGISTRY: Dict[str, Tuple[str, ...]] = {
    "openai": ("openai:OpenAIAdapter", "openai:OpenAIResponsesAdapter"),
    "openrouter": ("openrouter:OpenRouterAdapter", "openrouter:OpenRouterResponsesAdapter"),
    "xai": ("xai:XAIAdapter",),
    "azure": ("azure:AzureAdapter", "azure:AzureResponsesAdapter"),
    "deepseek": ("deepseek:DeepSeekAdapter",),
    "groq": ("groq:GroqAdapter",),
    "mistral": ("mistral:MistralAdapter",),
    "together": ("together:TogetherAdapter",),
    "fireworks": ("fireworks:FireworksAdapter",),
    "cerebras": ("cerebras:CerebrasAdapter",),
    "anthropic": ("anthropic:AnthropicAdapter",),
    "gemini": ("gemini:GeminiAdapter",),
    "bedrock": ("bedrock:BedrockAdapter",),
    "ollama": ("ollama:OllamaAdapter",),
    "vertex": ("vertex:VertexGeminiAdapter", "vertex:VertexClaudeAdapter"),
    "local": ("local:LocalAdapter",),
}


@functools.cache
def _load(spec: str) -> Type[Adapter]:
    module, _, name = spec.partition(":")
    cls: Type[Adapter] = getattr(importlib.import_module(f".{module}", __name__), name)
    return cls


class _Protocols(Mapping[str, Tuple[Type[Adapter], ...]]):
    """provider name -> its adapter classes, the default first (loaded on use)."""

    def __getitem__(self, provider: str) -> Tuple[Type[Adapter], ...]:
        return tuple(_load(spec) for spec in _REGISTRY[provider])

    def __iter__(self) -> Iterator[str]:
        return iter(_REGISTRY)

    def __len__(self) -> int:
        return len(_REGISTRY)


class _Defaults(Mapping[str, Type[Adapter]]):
    """provider name -> its default adapter class (loaded on use)."""

    def __getitem__(self, provider: str) -> Type[Adapter]:
        return _load(_REGISTRY[provider][0])

    def __iter__(self) -> Iterator[str]:
        return iter(_REGISTRY)

    def __len__(self) -> int:
        return len(_REGISTRY)


#: provider name -> its protocols, the default first (``api=`` picks another)
APIS: Mapping[str, Tuple[Type[Adapter], ...]] = _Protocols()

#: provider name -> its default adapter class
PROVIDERS: Mapping[str, Type[Adapter]] = _Defaults()


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
    if provider not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigurationError(f"unknown provider {provider!r}; known providers: {known}")
    classes = APIS[provider]
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
