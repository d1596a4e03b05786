"""Scrubbing secrets from text."""

from __future__ import annotations

from minillm.redaction import Redactor, excerpt


def test_known_secrets_are_masked_wherever_they_appear() -> None:
    redactor = Redactor(["sk-secret-123456", None, ""])
    assert redactor.scrub("key sk-secret-123456 and sk-secret-123456!") == "key *** and ***!"


def test_bearer_tokens_and_key_query_parameters_are_masked_even_when_unknown() -> None:
    redactor = Redactor([])
    assert redactor.scrub("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert redactor.scrub("https://h/p?key=AIzaXYZ&x=1") == "https://h/p?key=***&x=1"


def test_nested_json_values_are_scrubbed() -> None:
    redactor = Redactor(["canary-key"])
    assert redactor.scrub_obj({"a": ["x canary-key", {"b": "canary-key"}], "n": 1}) == {
        "a": ["x ***", {"b": "***"}],
        "n": 1,
    }


def test_the_redactor_repr_does_not_show_its_secrets() -> None:
    assert "canary" not in repr(Redactor(["canary-key"]))


def test_excerpts_collapse_whitespace_and_are_bounded() -> None:
    assert excerpt("a \n\t b") == "a b"
    assert len(excerpt("x" * 1000, 50)) == 50
