"""Structured output: ``complete(..., response_format=Schema)``.

* :mod:`.schema` -- validating parsed JSON against the schema subset
  providers accept;
* :mod:`.attrs_schema` -- the schema of an attrs class, and structuring an
  answer into it with cattrs;
* :mod:`.format` -- :class:`OutputFormat` (what the adapters translate) and
  reading an answer against it;
* :mod:`.loop` -- asking again while ``validation_retries`` last, and what
  all the tries cost.

Imported only when a call asks for a format: ``import minillm`` stays light.
"""

from __future__ import annotations

from .format import OutputFormat, output_format
from .loop import complete_structured, refuse_in_stream

__all__ = ["OutputFormat", "complete_structured", "output_format", "refuse_in_stream"]
