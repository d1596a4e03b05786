"""Sphinx configuration for minillm's documentation."""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any, Optional, Tuple

sys.path.insert(0, os.path.abspath(".."))

from minillm import __version__

project = "minillm"
author = "The minillm authors"
copyright = "2026, The minillm authors"  # noqa: A001 - Sphinx's name
version = release = __version__

# No intersphinx: the docs must build offline.
extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Every cross-reference must resolve: a name that does not is a broken link
# or a stale docstring. The exceptions are names outside minillm, which
# cannot resolve without intersphinx (and the docs build offline).
nitpicky = True
nitpick_ignore = [
    # The standard library's types, named in signatures and docstrings.
    ("py:class", "decimal.Decimal"),
    ("py:class", "Decimal"),  # as written in an attrs field annotation
    ("py:class", "datetime.date"),
    ("py:class", "datetime.datetime"),
    ("py:class", "os.PathLike"),
    ("py:class", "threading.Event"),
    ("py:class", "ssl.SSLContext"),
    ("py:class", "abc.ABC"),
    ("py:class", "concurrent.futures.Executor"),
    ("py:class", "concurrent.futures._base.Executor"),  # where Executor is defined
    ("py:mod", "logging"),
    # A TypeVar in a generic signature is a placeholder, not a type to link.
    ("py:class", "minillm.retry.T"),
    # Optional dependencies' types, in the signatures of their integrations.
    ("py:class", "StreamingHttpResponse"),  # Django
    ("py:class", "TracerProvider"),  # OpenTelemetry
    ("py:class", "MeterProvider"),  # OpenTelemetry
]

# Annotations name these by their short names (imported for type checking
# only): point them at the entries of "Types named in signatures".
autodoc_type_aliases = {
    "CostSink": "minillm.accounting.sinks.CostSink",
    "RetryCallback": "minillm.config.RetryCallback",
    "Outcome": "minillm.testing.batches.Outcome",
    "UsageRule": "minillm.testing.batches.UsageRule",
}

#: Classes minillm makes and hands out, never constructed by a caller: their
#: constructors take minillm's internal objects, so no signature is shown.
MADE_BY_MINILLM = {
    "minillm.streaming.TrackedStream",
    "minillm.batch.ProviderBatch",
    "minillm.testing.billing.Invoice",
}

html_theme = "alabaster"
html_static_path: list[str] = []
exclude_patterns = ["_build"]


class _Shown:
    """A default as a signature should show it (its repr is the text)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _default_of(field: Any) -> Any:
    """What a caller gets for an attrs field left out: a factory's value (a
    fresh ``[]`` each time) rather than attrs' ``NOTHING`` sentinel, which is
    what the generated ``__init__``'s signature says."""
    import attrs

    default = field.default
    if not isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return default
    if not default.takes_self:
        value = repr(default.factory())
        if len(value) <= 20:
            return _Shown(value)
    return _Shown("<factory>")


def _attrs_signature(
    app: Any, what: str, name: str, obj: Any, options: Any, signature: Optional[str], return_annotation: Any
) -> Optional[Tuple[str, Optional[str]]]:
    """The signature of an attrs class with its real defaults."""
    import attrs
    from sphinx.util.inspect import stringify_signature

    if what not in ("class", "exception") or not inspect.isclass(obj) or not attrs.has(obj):
        return None
    if getattr(obj.__init__, "__objclass__", None) is not None:  # attrs wrote no __init__
        return None
    fields = {field.alias: field for field in attrs.fields(obj) if field.init}
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    parameters = [
        parameter.replace(default=_default_of(fields[parameter.name]))
        if parameter.name in fields and parameter.default is not inspect.Parameter.empty
        else parameter
        for parameter in sig.parameters.values()
    ]
    shown = sig.replace(parameters=parameters)
    return stringify_signature(shown, show_annotation=False, show_return_annotation=False), return_annotation


def _no_constructor(
    app: Any, what: str, name: str, obj: Any, options: Any, signature: Optional[str], return_annotation: Any
) -> Optional[Tuple[str, Optional[str]]]:
    """No signature, and no parameter types, for a class in
    ``MADE_BY_MINILLM``: autodoc has recorded the types of its constructor's
    parameters just before this event, so they are taken back out."""
    if what != "class" or f"{obj.__module__}.{obj.__qualname__}" not in MADE_BY_MINILLM:
        return None
    document = getattr(app.env, "current_document", None)
    getattr(document, "autodoc_annotations", {}).pop(name, None)
    return ("", None)


def setup(app: Any) -> None:
    app.connect("autodoc-process-signature", _no_constructor, priority=100)
    # After autodoc has recorded the parameter types from the real signature.
    app.connect("autodoc-process-signature", _attrs_signature, priority=900)
