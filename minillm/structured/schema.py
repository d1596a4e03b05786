"""A validator for the JSON-schema subset providers accept for structured
output: ``type`` (one or a list), ``properties``, ``required``,
``additionalProperties``, ``items``, ``enum``, ``const``, ``anyOf``,
``nullable`` (the OpenAPI form Gemini once used), and ``$ref`` into the
schema's own ``$defs`` / ``definitions``. Annotations (``description``,
``title``, ``format``, ``default``, ...) are not checked: the providers do
not enforce them either, and an answer is never refused for them.

Pure functions, no dependency: :func:`problems` lists what is wrong with a
value, each named by its JSON path (``$.items[2].name``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from ..errors import InvalidArgumentError

__all__ = ["check_schema", "is_strict", "problems"]

#: JSON types -> the Python values ``json.loads`` makes for them.
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}

#: At most this many problems are reported: enough to fix an answer, short
#: enough to show the model.
_MAX_PROBLEMS = 20


def check_schema(schema: Any, where: str = "response_format") -> None:
    """Refuse a schema this validator cannot read, before anything is sent.

    :raises InvalidArgumentError: naming the place and what is wrong.
    """
    if not isinstance(schema, Mapping):
        raise InvalidArgumentError(f"{where} must be a JSON-schema dict, not {type(schema).__name__}")
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    for name in kinds:
        if name not in _TYPES:
            raise InvalidArgumentError(f"{where} has an unknown type {name!r}; expected one of {', '.join(_TYPES)}")
    for key in ("properties", "$defs", "definitions"):
        children = schema.get(key)
        if children is None:
            continue
        if not isinstance(children, Mapping):
            raise InvalidArgumentError(f"{where}.{key} must be a dict of schemas")
        for name, child in children.items():
            check_schema(child, f"{where}.{key}.{name}")
    required = schema.get("required")
    if required is not None and (not isinstance(required, list) or not all(isinstance(r, str) for r in required)):
        raise InvalidArgumentError(f"{where}.required must be a list of property names")
    for key in ("items", "additionalProperties"):
        child = schema.get(key)
        if isinstance(child, Mapping):
            check_schema(child, f"{where}.{key}")
        elif child is not None and not isinstance(child, bool):
            raise InvalidArgumentError(f"{where}.{key} must be a schema or a boolean")
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if options is None:
            continue
        if not isinstance(options, list) or not options:
            raise InvalidArgumentError(f"{where}.{key} must be a non-empty list of schemas")
        for position, child in enumerate(options):
            check_schema(child, f"{where}.{key}[{position}]")
    enum = schema.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum):
        raise InvalidArgumentError(f"{where}.enum must be a non-empty list")
    ref = schema.get("$ref")
    if ref is not None and (not isinstance(ref, str) or not ref.startswith(("#/$defs/", "#/definitions/"))):
        raise InvalidArgumentError(f"{where}.$ref must point into the schema's own $defs, not {ref!r}")


def is_strict(schema: Mapping[str, Any]) -> bool:
    """Whether ``schema`` already meets OpenAI's strict mode: every object
    lists all its properties as required and allows no others. Only such a
    schema is sent with ``"strict": true`` (the provider refuses others)."""
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False or set(schema.get("required") or ()) != set(properties):
            return False
        if not all(is_strict(child) for child in properties.values()):
            return False
    children: List[Any] = []
    for key in ("$defs", "definitions"):
        children += list((schema.get(key) or {}).values())
    children += list(schema.get("anyOf") or ()) + list(schema.get("oneOf") or ())
    if isinstance(schema.get("items"), Mapping):
        children.append(schema["items"])
    return all(is_strict(child) for child in children)


def problems(schema: Mapping[str, Any], value: Any) -> List[str]:
    """What is wrong with ``value`` under ``schema`` (empty: it validates)."""
    found: List[str] = []
    _check(schema, value, "$", schema, found)
    return found[:_MAX_PROBLEMS]


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    seen = 0
    while "$ref" in schema:
        _, _, path = schema["$ref"].partition("#/")
        section, _, name = path.partition("/")
        target = (root.get(section) or {}).get(name)
        seen += 1
        if not isinstance(target, Mapping) or seen > 32:
            raise InvalidArgumentError(f"response_format has a $ref that leads nowhere: {schema['$ref']!r}")
        schema = target
    return schema


def _check(schema: Mapping[str, Any], value: Any, path: str, root: Mapping[str, Any], found: List[str]) -> None:
    if len(found) >= _MAX_PROBLEMS:
        return
    schema = _resolve(schema, root)
    if value is None and schema.get("nullable") is True:
        return
    if "const" in schema and not _same(value, schema["const"]):
        found.append(f"{path}: expected {_show(schema['const'])}, got {_show(value)}")
        return
    enum = schema.get("enum")
    if enum is not None and not any(_same(value, option) for option in enum):
        found.append(f"{path}: {_show(value)} is not one of {', '.join(_show(o) for o in enum)}")
        return
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        failures = [_sub(option, value, path, root) for option in options]
        if all(failures):
            best = min(failures, key=len)
            found.append(f"{path}: matches none of the {len(options)} allowed shapes (closest: {best[0]})")
            return
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_TYPES[name](value) for name in kinds):
            found.append(f"{path}: expected {' or '.join(kinds)}, got {_kind(value)}")
            return
    if isinstance(value, dict):
        _check_object(schema, value, path, root, found)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for position, item in enumerate(value):
            _check(schema["items"], item, f"{path}[{position}]", root, found)


def _check_object(
    schema: Mapping[str, Any], value: Dict[str, Any], path: str, root: Mapping[str, Any], found: List[str]
) -> None:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    for name in schema.get("required") or ():
        if name not in value:
            found.append(f"{path}: the required property {name!r} is missing")
    extra = schema.get("additionalProperties")
    for name, item in value.items():
        child: Optional[Mapping[str, Any]] = properties.get(name)
        if child is not None:
            _check(child, item, f"{path}.{name}", root, found)
        elif extra is False:
            found.append(f"{path}: the property {name!r} is not allowed")
        elif isinstance(extra, Mapping):
            _check(extra, item, f"{path}.{name}", root, found)


def _sub(schema: Mapping[str, Any], value: Any, path: str, root: Mapping[str, Any]) -> List[str]:
    found: List[str] = []
    _check(schema, value, path, root, found)
    return found


def _same(value: Any, expected: Any) -> bool:
    # JSON has no bool among its numbers: true is not 1.
    if type(value) is bool or type(expected) is bool:
        return type(value) is type(expected) and value == expected
    return bool(value == expected)


def _kind(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
