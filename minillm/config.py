"""A client's configuration: :class:`ClientConfig`, frozen and validated once.

It is everything :class:`~minillm.Client` was given, checked when the
client is made -- so a mistake is a :class:`~minillm.ConfigurationError`
at construction, never halfway through a call -- and it is what a client
pickles as (for process pools and cluster executors): connections, locks
and pending look-ups stay behind. An API key passed explicitly travels with
it (kept out of every ``repr``); a key read from the environment does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Tuple, Union

import attrs

from .accounting.budget import Budget
from .accounting.lookups import LookupPolicy
from .accounting.pricing import TokenPrice
from .accounting.sinks import CostSink, as_sink
from .errors import ConfigurationError, InvalidArgumentError
from .meta import check_meta
from .retry import RetryPolicy
from .timeouts import Timeout

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client

__all__ = ["ClientConfig", "RetryCallback", "with_max_retries"]

RetryCallback = Callable[[int, BaseException, float], None]


def _instance(kind: type, what: str) -> Callable[[Any, Any, Any], None]:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None and not isinstance(value, kind):
            raise ConfigurationError(f"{attribute.name} must be {what}, not {type(value).__name__}")

    return check


def _sink(instance: Any, attribute: Any, value: Any) -> None:
    as_sink(value)  # raises ConfigurationError for anything that is not a sink


def _meta(value: Any) -> Mapping[str, Any]:
    try:
        return check_meta(value)
    except InvalidArgumentError as exc:
        raise ConfigurationError(str(exc)) from None


def _timeout(value: Any) -> Timeout:
    try:
        return Timeout.coerce(value)
    except InvalidArgumentError as exc:
        raise ConfigurationError(str(exc)) from exc


def _retry(value: Optional[RetryPolicy]) -> RetryPolicy:
    return RetryPolicy() if value is None else value


def with_max_retries(retry: Optional[RetryPolicy], max_retries: Optional[int]) -> Optional[RetryPolicy]:
    """The policy for ``Client(retry=..., max_retries=...)``: ``max_retries=N``
    is the official SDKs' spelling of ``RetryPolicy(max_attempts=N + 1)``.

    :raises ConfigurationError: ``max_retries`` is not a non-negative
        integer, or disagrees with the ``retry`` policy also given.
    """
    if max_retries is None:
        return retry
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigurationError(f"max_retries must be an integer >= 0, not {max_retries!r}")
    if retry is None:
        return RetryPolicy(max_attempts=max_retries + 1)
    if getattr(retry, "max_attempts", None) is None:
        return retry  # not a policy: refused with the other settings, by the field's own check
    if retry.max_attempts != max_retries + 1:
        raise ConfigurationError(
            f"max_retries={max_retries} means {max_retries + 1} attempts, but retry= allows "
            f"{retry.max_attempts}: give one of them"
        )
    return retry


def _lookup(value: Optional[LookupPolicy]) -> LookupPolicy:
    return LookupPolicy() if value is None else value


def _fallbacks(value: Any) -> Tuple[Any, ...]:
    from .client import Client

    if isinstance(value, (str, Client)):
        value = (value,)
    try:
        fallbacks = tuple(value or ())
    except TypeError:
        raise ConfigurationError(f"fallbacks must be model strings or Clients, not {type(value).__name__}") from None
    for fallback in fallbacks:
        if not isinstance(fallback, (str, Client)):
            raise ConfigurationError(f"a fallback must be a model string or a Client, not {type(fallback).__name__}")
    return fallbacks


@attrs.frozen(kw_only=True)
class ClientConfig:
    """What a :class:`~minillm.Client` was made with (see its parameters).

    ``meta`` is a copy; treat it as read-only.
    """

    model: str
    api_key: Optional[str] = attrs.field(default=None, repr=False, eq=False)
    base_url: Optional[str] = None
    on_cost: Optional[CostSink] = attrs.field(default=None, validator=_sink, eq=False)
    meta: Mapping[str, Any] = attrs.field(factory=dict, converter=_meta)
    price: Optional[TokenPrice] = attrs.field(default=None, validator=_instance(TokenPrice, "a minillm.TokenPrice"))
    retry: RetryPolicy = attrs.field(
        factory=RetryPolicy, converter=_retry, validator=_instance(RetryPolicy, "a minillm.RetryPolicy")
    )
    fallbacks: Tuple[Union[str, Client], ...] = attrs.field(default=(), converter=_fallbacks, eq=False)
    timeout: Timeout = attrs.field(factory=Timeout, converter=_timeout)
    app_url: Optional[str] = None
    app_title: Optional[str] = None
    api: Optional[str] = None
    think_tags: bool = attrs.field(default=True, converter=bool)
    on_retry: Optional[RetryCallback] = attrs.field(default=None, eq=False)
    lookup: LookupPolicy = attrs.field(
        factory=LookupPolicy, converter=_lookup, validator=_instance(LookupPolicy, "a minillm.LookupPolicy")
    )
    budget: Optional[Budget] = attrs.field(default=None, validator=_instance(Budget, "a minillm.Budget"), eq=False)

    def __attrs_post_init__(self) -> None:
        if self.base_url is not None and not isinstance(self.base_url, str):
            raise ConfigurationError(f"base_url must be a string, not {type(self.base_url).__name__}")
        if self.on_retry is not None and not callable(self.on_retry):
            raise ConfigurationError(f"on_retry must be callable, not {type(self.on_retry).__name__}")

    def for_fallback(self, model: str) -> ClientConfig:
        """The configuration of a fallback given as a model string: this
        one's settings for the call -- retries, timeouts, hooks, attribution
        -- with the key and base URL from the environment, and no price (a
        price belongs to one model: the catalog prices the fallback, or it
        books ``UNPRICED``; pass a :class:`~minillm.Client` to price it)."""
        return ClientConfig(
            model=model,
            retry=self.retry,
            timeout=self.timeout,
            think_tags=self.think_tags,
            on_retry=self.on_retry,
            lookup=self.lookup,
            app_url=self.app_url,
            app_title=self.app_title,
        )
