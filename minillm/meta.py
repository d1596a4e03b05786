"""What a booking's ``meta`` may be: a JSON object.

Every ledger keeps ``meta`` and answers queries by it -- in memory, as
SQLite JSON text, as PostgreSQL ``JSONB``, in a Django ``JSONField``. So
that all of them keep exactly the same thing, and nothing one caller books
can break another's queries, ``meta`` is held to what JSON can say: string
keys, and values that are ``None``, booleans, integers, finite floats,
strings, lists (or tuples, kept as lists) and such objects again.
Anything else -- a non-string key, ``NaN`` or an infinity, a ``datetime``,
a ``Decimal``, an object of your own -- is refused with a clear error when
the call is made, before anything is sent.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping

from .errors import InvalidArgumentError

__all__ = ["MAX_DEPTH", "check_meta"]

#: How deeply ``meta`` may nest.
MAX_DEPTH = 32


def check_meta(meta: Any, *, what: str = "meta") -> Dict[str, Any]:
    """A copy of ``meta`` as JSON would give it back (tuples become lists).

    :raises InvalidArgumentError: ``meta`` is not a JSON object; the message
        names where, and what was found.
    """
    if meta is None:
        return {}
    if type(meta) is not dict and not isinstance(meta, Mapping):
        raise InvalidArgumentError(f"{what} must be a dict, not {type(meta).__name__}")
    # Every booking passes here, so the common case -- a flat object of
    # scalars -- is copied without composing the path each error would name.
    copy: Dict[str, Any] = {}
    for key, item in meta.items():  # checked and copied in one pass: what is kept is what was checked
        if type(key) is not str or not (item is None or type(item) in _SCALARS):
            return _object(meta, what, 0)
        copy[key] = item
    return copy


#: What a flat ``meta`` holds without further checks (exact types: a float
#: must be checked for finiteness, a subclass may pretend).
_SCALARS = frozenset({str, int, bool})


def _object(value: Mapping[Any, Any], where: str, depth: int) -> Dict[str, Any]:
    if depth > MAX_DEPTH:
        raise InvalidArgumentError(f"{where} nests deeper than {MAX_DEPTH} levels")
    copy: Dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise InvalidArgumentError(
                f"{where} has a key of type {type(key).__name__} ({key!r}): meta keys must be strings"
            )
        copy[key] = _value(item, f"{where}[{key!r}]", depth + 1)
    return copy


def _value(value: Any, where: str, depth: int) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgumentError(f"{where} is {value!r}: JSON has no NaN or infinity")
        return value
    if isinstance(value, Mapping):
        return _object(value, where, depth)
    if isinstance(value, (list, tuple)):
        if depth > MAX_DEPTH:
            raise InvalidArgumentError(f"{where} nests deeper than {MAX_DEPTH} levels")
        return [_value(item, f"{where}[{n}]", depth + 1) for n, item in enumerate(value)]
    raise InvalidArgumentError(
        f"{where} is a {type(value).__name__}: meta values must be JSON (str, int, float, bool, None, list, dict)"
    )
