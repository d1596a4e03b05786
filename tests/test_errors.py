"""The exception tree and the one status table."""

from __future__ import annotations

import builtins

import pytest

import minillm
from minillm.errors import (
    STATUS_ERRORS,
    StreamContextOverflowError,
    StreamTimeoutError,
    error_class_for_status,
)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, minillm.BadRequestError),
        (401, minillm.AuthenticationError),
        (403, minillm.AuthenticationError),
        (404, minillm.NotFoundError),
        (422, minillm.BadRequestError),
        (429, minillm.RateLimitError),
        (500, minillm.ServerError),
        (529, minillm.ServerError),
        (599, minillm.ServerError),
        (402, minillm.APIError),
        (418, minillm.APIError),
    ],
)
def test_statuses_map_to_classes_through_one_table(status: int, cls: type) -> None:
    assert error_class_for_status(status) is cls


def test_every_class_in_the_table_is_an_api_error() -> None:
    assert all(issubclass(cls, minillm.APIError) for cls in STATUS_ERRORS.values())


def test_every_error_is_a_minillm_error() -> None:
    for name in minillm.__all__:
        value = getattr(minillm, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, minillm.MiniLLMError), name


def test_a_timeout_is_also_a_builtin_timeout_error() -> None:
    assert issubclass(minillm.APITimeoutError, TimeoutError)
    assert issubclass(minillm.APITimeoutError, minillm.APIConnectionError)


def test_a_context_overflow_is_a_bad_request() -> None:
    assert issubclass(minillm.ContextOverflowError, minillm.BadRequestError)


def test_mid_stream_variants_are_both_a_stream_error_and_the_specific_error() -> None:
    timeout = StreamTimeoutError("late", partial_text="abc")
    assert isinstance(timeout, minillm.StreamError) and isinstance(timeout, minillm.APITimeoutError)
    assert isinstance(timeout, TimeoutError) and timeout.partial_text == "abc"
    overflow = StreamContextOverflowError("too long", body={"code": "x"}, provider="openai")
    assert isinstance(overflow, minillm.StreamError) and isinstance(overflow, minillm.ContextOverflowError)
    assert (overflow.body, overflow.provider, overflow.status_code) == ({"code": "x"}, "openai", None)


def test_api_errors_carry_status_body_provider_endpoint_and_retry_hint() -> None:
    error = minillm.RateLimitError(
        "slow down", status_code=429, body={"e": 1}, provider="p", endpoint="u", retry_after=2.0
    )
    assert (error.status_code, error.body, error.provider, error.endpoint, error.retry_after) == (
        429,
        {"e": 1},
        "p",
        "u",
        2.0,
    )
    assert str(error) == "slow down"


def test_no_public_name_shadows_a_builtin() -> None:
    assert not set(minillm.__all__) & set(dir(builtins))
