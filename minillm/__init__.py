"""minillm: a synchronous Python SDK for LLM APIs whose costs add up.

Every request's cost is settled exactly once -- never lost, never
double-booked, never a fake ``$0`` -- however its stream ends.

This module only re-exports the public names; importing it does no I/O
and does not import the HTTP or retry stack.
"""

import logging as _logging

from ._version import __version__
from .accounting.budget import Budget
from .accounting.ledgers import Ledger, PostgresLedger, SQLiteLedger
from .accounting.lookups import LookupPolicy
from .accounting.pricing import TokenPrice
from .cancellation import CancellationToken
from .client import Client
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceeded,
    ConfigurationError,
    ContextOverflowError,
    InvalidArgumentError,
    LedgerError,
    MalformedResponseError,
    MiniLLMError,
    NotFoundError,
    RateLimitError,
    ServerError,
    StreamError,
)
from .models import Chunk, CostInfo, Resolution, Response, ToolCall, Usage
from .retry import RetryPolicy
from .streaming import TrackedStream
from .timeouts import Timeout

_logging.getLogger("minillm").addHandler(_logging.NullHandler())


def __getattr__(name: str) -> object:
    # minillm.batch is a submodule that needs more than "import minillm"
    # should load: it is imported the first time it is used.
    if name == "batch":
        import importlib

        return importlib.import_module(".batch", __name__)
    raise AttributeError(f"module 'minillm' has no attribute {name!r}")


__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "Budget",
    "BudgetExceeded",
    "CancellationToken",
    "Chunk",
    "Client",
    "ConfigurationError",
    "ContextOverflowError",
    "CostInfo",
    "InvalidArgumentError",
    "Ledger",
    "LedgerError",
    "LookupPolicy",
    "MalformedResponseError",
    "MiniLLMError",
    "NotFoundError",
    "PostgresLedger",
    "RateLimitError",
    "Resolution",
    "Response",
    "RetryPolicy",
    "SQLiteLedger",
    "ServerError",
    "StreamError",
    "Timeout",
    "TokenPrice",
    "ToolCall",
    "TrackedStream",
    "Usage",
    "__version__",
]
