"""Plain-data forms of minillm's values, for logs and durable ledgers.

A cattrs converter owns the mapping (``Decimal`` as a string, so no digit is
lost; enums as their value). cattrs is imported on first use.
"""

from __future__ import annotations

import functools
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Dict, Type, TypeVar, Union

from .models import CostInfo, Resolution, Response, Usage

if TYPE_CHECKING:  # pragma: no cover
    import cattrs

__all__ = ["cost_from_dict", "cost_to_dict", "cost_to_json", "value_from_dict", "value_to_dict"]

V = TypeVar("V", CostInfo, Response, Usage)


@functools.cache
def _get_converter() -> cattrs.Converter:
    import cattrs

    converter = cattrs.Converter()
    converter.register_unstructure_hook(Decimal, str)
    converter.register_structure_hook(Decimal, lambda value, _: Decimal(str(value)))
    converter.register_unstructure_hook(Resolution, lambda r: r.value)
    converter.register_structure_hook(Resolution, lambda value, _: Resolution(value))
    return converter


def cost_to_dict(cost: CostInfo) -> Dict[str, Any]:
    """Every field of ``cost`` as JSON-ready data (money as a string)."""
    return value_to_dict(cost)


def cost_from_dict(data: Dict[str, Any]) -> CostInfo:
    """The inverse of :func:`cost_to_dict`."""
    return value_from_dict(data, CostInfo)


def cost_to_json(cost: CostInfo) -> str:
    """Every field of ``cost`` as one line of JSON."""
    return json.dumps(cost_to_dict(cost), sort_keys=True)


def value_to_dict(value: Union[CostInfo, Response, Usage]) -> Dict[str, Any]:
    """Every field of a :class:`~minillm.Response`, :class:`~minillm.Usage`
    or :class:`~minillm.CostInfo` as JSON-ready data: money as a decimal
    string, a resolution as its value, nested values as dicts."""
    result: Dict[str, Any] = _get_converter().unstructure(value)
    return result


def value_from_dict(data: Dict[str, Any], kind: Type[V]) -> V:
    """The inverse of :func:`value_to_dict`."""
    return _get_converter().structure(data, kind)
