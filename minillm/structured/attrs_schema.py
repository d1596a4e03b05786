"""attrs classes as structured output: the JSON schema of a class, derived
from its fields and their type hints, and the answer structured into an
instance with cattrs.

The schema meets OpenAI's strict mode, so it is sent with ``strict: true``
everywhere: every field is required (one with a default too -- strict mode
has no optional properties; make a field ``Optional`` to let the model say
"none") and no other property is allowed. Nested attrs classes are inlined,
so every provider's schema subset reads them; a class that contains itself
is refused.

Supported hints: ``str``, ``int``, ``float``, ``bool``, ``None``,
``Optional`` / ``Union``, ``List`` / ``Sequence`` / ``Tuple[X, ...]`` (and
the builtin generics), ``Dict[str, X]``, ``Literal``, ``enum.Enum``
subclasses with string or number values, nested attrs classes and ``Any``.
"""

from __future__ import annotations

import collections.abc
import enum
import types
import typing
from typing import Any, Dict, List, Tuple, Type

import attrs

from ..errors import InvalidArgumentError

__all__ = ["schema_for", "structure"]

_SCALARS: Dict[Any, Dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
}

#: ``X | Y`` (Python 3.10 and later), which is not ``typing.Union``.
_UNION_TYPE = getattr(types, "UnionType", None)

_SEQUENCES = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set)
_MAPPINGS = (dict, collections.abc.Mapping)


def schema_for(cls: Type[Any]) -> Dict[str, Any]:
    """The JSON schema of the attrs class ``cls``.

    :raises InvalidArgumentError: a field's hint cannot be read or has no
        JSON form (naming the field).
    """
    return _class_schema(cls, ())


def _class_schema(cls: Type[Any], inside: Tuple[Type[Any], ...]) -> Dict[str, Any]:
    if cls in inside:
        raise InvalidArgumentError(
            f"response_format: {cls.__name__} contains itself; a recursive class has no inlined schema"
        )
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:
        raise InvalidArgumentError(
            f"response_format: the type hints of {cls.__name__} cannot be read ({type(exc).__name__}: {exc})"
        ) from None
    properties: Dict[str, Any] = {}
    for field in attrs.fields(cls):
        if not field.init:
            continue
        # cattrs reads each field under its attribute name.
        name = field.name
        if field.name not in hints:
            raise InvalidArgumentError(f"response_format: {cls.__name__}.{field.name} has no type hint")
        where = f"{cls.__name__}.{field.name}"
        properties[name] = _schema(hints[field.name], where, (*inside, cls))
    schema: Dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):  # attrs' generated docstring says nothing
        schema["description"] = " ".join(cls.__doc__.split())
    return schema


def _schema(hint: Any, where: str, inside: Tuple[Type[Any], ...]) -> Dict[str, Any]:
    if hint is Any:
        return {}
    if hint in _SCALARS:
        return dict(_SCALARS[hint])
    if isinstance(hint, type) and attrs.has(hint):
        return _class_schema(hint, inside)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [member.value for member in hint]
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise InvalidArgumentError(f"response_format: {where}: the values of {hint.__name__} are not JSON scalars")
        return {"enum": values}
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if origin is typing.Union or (_UNION_TYPE is not None and origin is _UNION_TYPE):
        options = [_schema(argument, where, inside) for argument in arguments]
        return {"anyOf": options}
    if origin is typing.Literal:
        return {"enum": list(arguments)}
    if origin in _SEQUENCES:
        if origin is tuple and not (len(arguments) == 2 and arguments[1] is Ellipsis):
            raise InvalidArgumentError(f"response_format: {where}: only Tuple[X, ...] has a JSON form, not {hint!r}")
        item = arguments[0] if arguments else Any
        return {"type": "array", "items": _schema(item, where, inside)}
    if origin in _MAPPINGS:
        key, value = arguments if arguments else (str, Any)
        if key is not str:
            raise InvalidArgumentError(f"response_format: {where}: JSON object keys are strings, not {key!r}")
        return {"type": "object", "additionalProperties": _schema(value, where, inside)}
    raise InvalidArgumentError(f"response_format: {where}: the type {hint!r} has no JSON schema")


def structure(cls: Type[Any], data: Any) -> Tuple[Any, List[str]]:
    """``data`` (parsed JSON) as an instance of ``cls``: ``(instance, [])``,
    or ``(None, problems)`` when cattrs (or the class's own validators)
    refuse it."""
    import cattrs
    import cattrs.v

    def describe(exc: BaseException, kind: Any) -> str:
        # cattrs says "invalid value" for a validator's refusal: its own words say why.
        text = cattrs.v.format_exception(exc, kind)
        detail = str(exc)
        return f"{text}: {detail}" if detail and not isinstance(exc, KeyError) and detail not in text else text

    converter = cattrs.Converter()
    try:
        return converter.structure(data, cls), []
    except cattrs.BaseValidationError as exc:
        return None, [str(line) for line in cattrs.transform_error(exc, format_exception=describe)]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return None, [f"$: {type(exc).__name__}: {exc}"]
