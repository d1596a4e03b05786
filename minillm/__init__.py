"""minillm: a synchronous Python SDK for LLM APIs whose costs add up.

Every attempt a provider may bill is booked exactly once -- never lost,
never double-booked, never a fake ``$0`` -- however its request ends.

This module only names the public API: each name is imported the first time
it is used, so ``import minillm`` does no I/O and loads nothing else (not
even attrs); ``minillm.Client`` loads what a client needs, and a ledger or
``minillm.batch`` only when they are used.
"""

from __future__ import annotations

import importlib as _importlib
import logging as _logging
import typing as _typing

from . import _version

#: minillm's version, a string such as ``"0.1.0"``.
__version__: str = _version.__version__

# A library never prints on its own: the application configures logging.
_logging.getLogger("minillm").addHandler(_logging.NullHandler())

if _typing.TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__
    from . import batch as batch
    from .accounting.budget import Budget as Budget
    from .accounting.ledgers import Ledger as Ledger
    from .accounting.ledgers import PostgresLedger as PostgresLedger
    from .accounting.ledgers import SQLiteLedger as SQLiteLedger
    from .accounting.lookups import LookupPolicy as LookupPolicy
    from .accounting.pricing import TokenPrice as TokenPrice
    from .accounting.reconcile import Reconciliation as Reconciliation
    from .accounting.reconcile import reconcile as reconcile
    from .cancellation import CancellationToken as CancellationToken
    from .client import Client as Client
    from .errors import APIConnectionError as APIConnectionError
    from .errors import APIError as APIError
    from .errors import APITimeoutError as APITimeoutError
    from .errors import AuthenticationError as AuthenticationError
    from .errors import BadRequestError as BadRequestError
    from .errors import BudgetExceeded as BudgetExceeded
    from .errors import ConfigurationError as ConfigurationError
    from .errors import ContextOverflowError as ContextOverflowError
    from .errors import InvalidArgumentError as InvalidArgumentError
    from .errors import LedgerError as LedgerError
    from .errors import MalformedResponseError as MalformedResponseError
    from .errors import MiniLLMError as MiniLLMError
    from .errors import NotFoundError as NotFoundError
    from .errors import OutputValidationError as OutputValidationError
    from .errors import RateLimitError as RateLimitError
    from .errors import ServerError as ServerError
    from .errors import StreamError as StreamError
    from .models import AttemptsCost as AttemptsCost
    from .models import Chunk as Chunk
    from .models import CostInfo as CostInfo
    from .models import Resolution as Resolution
    from .models import Response as Response
    from .models import ToolCall as ToolCall
    from .models import Usage as Usage
    from .retry import RetryPolicy as RetryPolicy
    from .streaming import TrackedStream as TrackedStream
    from .timeouts import Timeout as Timeout

#: public name -> the module that defines it
_HOMES: _typing.Dict[str, str] = {
    "APIConnectionError": ".errors",
    "APIError": ".errors",
    "APITimeoutError": ".errors",
    "AttemptsCost": ".models",
    "AuthenticationError": ".errors",
    "BadRequestError": ".errors",
    "Budget": ".accounting.budget",
    "BudgetExceeded": ".errors",
    "CancellationToken": ".cancellation",
    "Chunk": ".models",
    "Client": ".client",
    "ConfigurationError": ".errors",
    "ContextOverflowError": ".errors",
    "CostInfo": ".models",
    "InvalidArgumentError": ".errors",
    "Ledger": ".accounting.ledgers",
    "LedgerError": ".errors",
    "LookupPolicy": ".accounting.lookups",
    "MalformedResponseError": ".errors",
    "MiniLLMError": ".errors",
    "NotFoundError": ".errors",
    "OutputValidationError": ".errors",
    "PostgresLedger": ".accounting.ledgers",
    "RateLimitError": ".errors",
    "Reconciliation": ".accounting.reconcile",
    "Resolution": ".models",
    "Response": ".models",
    "RetryPolicy": ".retry",
    "SQLiteLedger": ".accounting.ledgers",
    "ServerError": ".errors",
    "StreamError": ".errors",
    "Timeout": ".timeouts",
    "TokenPrice": ".accounting.pricing",
    "ToolCall": ".models",
    "TrackedStream": ".streaming",
    "Usage": ".models",
    "reconcile": ".accounting.reconcile",
}


def __getattr__(name: str) -> _typing.Any:
    home = _HOMES.get(name)
    if home is not None:
        value = getattr(_importlib.import_module(home, __name__), name)
    elif name == "batch":  # a submodule, loaded when first used
        value = _importlib.import_module(".batch", __name__)
    else:
        raise AttributeError(f"module 'minillm' has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> _typing.List[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AttemptsCost",
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
    "OutputValidationError",
    "PostgresLedger",
    "RateLimitError",
    "Reconciliation",
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
    "reconcile",
]
