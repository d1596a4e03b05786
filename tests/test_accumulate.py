"""The stream state machine: one fold for complete() and stream()."""

from __future__ import annotations

import pytest

from minillm.accumulate import StreamState, accumulate
from minillm.events import STREAM_DONE, ProviderError, ReasoningDetail, ResponseInfo, ToolCallDelta
from minillm.models import Chunk, ToolCall, Usage


def fold(*events: object) -> StreamState:
    state = StreamState()
    for event in events:
        accumulate(state, event)  # type: ignore[arg-type]
    return state


def test_text_and_thinking_accumulate_in_order() -> None:
    state = fold(Chunk(thinking="hm"), Chunk(text="Hel"), Chunk(text="lo", thinking="!"))
    assert (state.text, state.thinking) == ("Hello", "hm!")


def test_reading_the_text_between_chunks_does_not_change_it() -> None:
    state = StreamState()
    for piece in ["a", "b", "c"]:
        accumulate(state, Chunk(text=piece))
        assert state.text.endswith(piece)
    assert state.text == "abc"


def test_usage_is_the_last_non_null_snapshot_never_a_sum() -> None:
    first = Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)
    state = fold(Chunk(usage=first), Chunk(usage=first), Chunk(text="x"), Chunk(usage=None))
    assert state.usage == first
    later = Usage(prompt_tokens=10, completion_tokens=7, total_tokens=17)
    accumulate(state, Chunk(usage=later))
    assert state.usage == later


def test_the_last_finish_reason_wins() -> None:
    assert fold(Chunk(finish_reason="length"), Chunk(finish_reason="stop")).finish_reason == "stop"


def test_tool_call_fragments_merge_by_index_and_never_concatenate_a_repeated_id_or_name() -> None:
    state = fold(
        ToolCallDelta(index=0, id="0", name="llm_version", arguments=""),
        ToolCallDelta(index=1, name="second"),
        ToolCallDelta(index=0, id="0", name="llm_version", arguments="{}"),
        ToolCallDelta(index=1, id="late-id", arguments='{"a":'),
        ToolCallDelta(index=1, arguments="1}"),
    )
    assert state.tool_calls() == [
        ToolCall(id="0", name="llm_version", arguments="{}"),
        ToolCall(id="late-id", name="second", arguments='{"a":1}'),
    ]


def test_response_identity_comes_from_the_first_event_that_has_it() -> None:
    state = fold(ResponseInfo(id=None, model="m1"), ResponseInfo(id="gen-1", model="m2"), ResponseInfo(id="gen-2"))
    assert (state.id, state.model) == ("gen-1", "m1")


@pytest.mark.parametrize(
    ("events", "terminal"),
    [
        ([Chunk(text="x")], False),
        ([Chunk(text="x", finish_reason="stop")], False),
        ([Chunk(usage=Usage())], False),
        ([Chunk(finish_reason="stop"), Chunk(usage=Usage())], True),
        ([Chunk(text="x"), STREAM_DONE], True),
    ],
)
def test_a_stream_is_complete_only_on_the_terminal_signal_or_finish_reason_plus_usage(
    events: list, terminal: bool
) -> None:
    assert fold(*events).is_terminal is terminal


def test_a_completed_response_without_a_finish_reason_finishes_stop_or_tool_calls() -> None:
    assert fold(Chunk(text="x"), STREAM_DONE).to_response().finish_reason == "stop"
    assert fold(ToolCallDelta(index=0, id="c", name="f"), STREAM_DONE).to_response().finish_reason == "tool_calls"
    assert fold(Chunk(text="x")).to_response().finish_reason is None


def test_the_callers_finish_reason_overrides_the_providers() -> None:
    state = fold(Chunk(text="x", finish_reason="stop"))
    assert state.to_response(finish_reason="cancelled").finish_reason == "cancelled"


def test_an_in_band_error_is_recorded() -> None:
    error = ProviderError(message="boom")
    assert fold(Chunk(text="x"), error).error is error


def test_content_seen_covers_text_thinking_and_tool_calls() -> None:
    assert not fold(ResponseInfo(id="x"), Chunk(usage=Usage())).content_seen
    assert fold(Chunk(thinking="t")).content_seen
    assert fold(ToolCallDelta(index=0)).content_seen


def test_anything_else_is_rejected() -> None:
    with pytest.raises(TypeError):
        accumulate(StreamState(), {"text": "raw dicts never flow past an adapter"})  # type: ignore[arg-type]


def test_a_tool_calls_first_id_and_name_are_kept_when_later_fragments_say_otherwise() -> None:
    state = StreamState()
    accumulate(state, ToolCallDelta(index=0, id="call_1", name="lookup", arguments='{"a":'))
    accumulate(state, ToolCallDelta(index=0, id="call_other", name="other", arguments="1}"))
    assert state.tool_calls() == [ToolCall(id="call_1", name="lookup", arguments='{"a":1}')]


def reasoning(*records: ReasoningDetail) -> list:  # type: ignore[type-arg]
    state = StreamState()
    for record in records:
        accumulate(state, record)
    return state.reasoning_details()


def test_reasoning_pieces_with_the_same_key_are_joined_text_field_by_text_field() -> None:
    joined = reasoning(
        ReasoningDetail({"type": "reasoning.text", "text": "Think", "signature": None}, merge_key=0),
        ReasoningDetail({"type": "reasoning.text", "text": "ing", "signature": "sig-1", "format": "x"}, merge_key=0),
    )
    # text concatenated; a field the first piece left empty filled; the type
    # (text, but not a streamed field) left as the first piece said it
    assert joined == [{"type": "reasoning.text", "text": "Thinking", "signature": "sig-1", "format": "x"}]


def test_a_reasoning_piece_joins_only_the_record_just_before_it() -> None:
    joined = reasoning(
        ReasoningDetail({"text": "a"}, merge_key="A"),
        ReasoningDetail({"text": "b"}, merge_key="B"),
        ReasoningDetail({"text": "c"}, merge_key="B"),
        ReasoningDetail({"text": "d"}, merge_key="A"),
    )
    assert joined == [{"text": "a"}, {"text": "bc"}, {"text": "d"}]


def test_reasoning_records_without_a_key_are_never_joined() -> None:
    records = [ReasoningDetail({"type": "redacted_thinking", "data": "x"}), ReasoningDetail({"data": "y"})]
    assert reasoning(*records) == [{"type": "redacted_thinking", "data": "x"}, {"data": "y"}]
    # nor is a keyed piece joined to a key-less record before it
    assert reasoning(ReasoningDetail({"text": "a"}), ReasoningDetail({"text": "b"}, merge_key=None)) == [
        {"text": "a"},
        {"text": "b"},
    ]


def test_a_field_already_set_is_not_overwritten_by_a_later_piece() -> None:
    joined = reasoning(
        ReasoningDetail({"id": "rs_1", "index": 0}, merge_key=1),
        ReasoningDetail({"id": "rs_2", "index": 5}, merge_key=1),
    )
    assert joined == [{"id": "rs_1", "index": 0}]
