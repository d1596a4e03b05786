"""The engine contract: the lifecycle, the stream validator, the decoding
loop, the built-in engines and the registry."""

from __future__ import annotations

import threading
from typing import Any, Iterator, List, Sequence

import pytest

import minillm
from minillm.cancellation import Stop
from minillm.engines import (
    MAX_TOKEN_COUNT,
    EchoEngine,
    Engine,
    EngineConfig,
    EngineContractError,
    EngineError,
    Fail,
    Finish,
    GenerationContext,
    GenerationRequest,
    NGramEngine,
    Output,
    PromptTooLongError,
    ScriptedEngine,
    decode,
    get_engine,
    register,
    registered,
    saturating_usage,
    tokenize,
    unregister,
    validate,
)
from minillm.testing import Gate, Pause

from .conftest import finishes


def ask(text: str, **kwargs: Any) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": text}], **kwargs)


def run(engine: Engine, request: GenerationRequest, ctx: GenerationContext | None = None) -> List[Output]:
    """Every output of one generation, checked against the contract."""
    engine.start()
    return list(validate(engine.generate(request, ctx or GenerationContext())))


def text_of(outputs: Sequence[Output]) -> str:
    return "".join(o.text for o in outputs)


USAGE = saturating_usage(1, 1)


# -- the validator ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "complaint"),
    [
        ([Output("a")], "without a terminal output"),
        ([], "without a terminal output"),
        ([Output("a"), Output.final("stop", USAGE), Output.final("stop", USAGE)], "after the terminal"),
        ([Output.final("stop", USAGE), Output("late")], "after the terminal"),
        (["a", Output.final("stop", USAGE)], "not an Output"),
        ([Output.final("finished", USAGE)], "not one of"),
        ([Output(finish_reason="stop")], "no usage"),
        ([Output("a", usage=USAGE), Output.final("stop", USAGE)], "not terminal but carries usage"),
    ],
    ids=[
        "no-terminal",
        "empty",
        "two-terminals",
        "output-after-terminal",
        "not-an-output",
        "bad-reason",
        "no-usage",
        "usage-early",
    ],
)
def test_the_validator_catches_each_violation(stream: List[Any], complaint: str) -> None:
    with pytest.raises(EngineContractError, match=complaint):
        list(validate(iter(stream)))


def test_an_exception_after_the_terminal_output_is_a_violation() -> None:
    def stream() -> Iterator[Output]:
        yield Output.final("stop", USAGE)
        raise RuntimeError("late")

    with pytest.raises(EngineContractError, match="raised RuntimeError after its terminal output"):
        list(validate(stream()))


def test_an_exception_mid_stream_is_terminal_and_passes_through() -> None:
    def stream() -> Iterator[Output]:
        yield Output("a")
        raise RuntimeError("the model crashed")

    seen: List[Output] = []
    with pytest.raises(RuntimeError, match="the model crashed"):
        for output in validate(stream()):
            seen.append(output)
    assert seen == [Output("a")]


def test_a_valid_stream_passes_unchanged_and_closing_it_closes_the_engines_stream() -> None:
    closed = threading.Event()

    def stream() -> Iterator[Output]:
        try:
            yield Output("a")
            yield Output("b")
            yield Output.final("stop", USAGE)
        finally:
            closed.set()

    assert list(validate(stream())) == [Output("a"), Output("b"), Output.final("stop", USAGE)]
    checked = validate(stream())
    next(checked)
    checked.close()  # type: ignore[attr-defined]
    assert closed.is_set()


def test_usage_saturates_instead_of_growing_past_what_a_reader_holds() -> None:
    usage = saturating_usage(MAX_TOKEN_COUNT, 5)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (MAX_TOKEN_COUNT, 5, MAX_TOKEN_COUNT)
    assert saturating_usage(10**30, -3).completion_tokens == 0
    assert saturating_usage(10**30, 0).prompt_tokens == MAX_TOKEN_COUNT


# -- decoding -------------------------------------------------------------------------------------


def test_tokens_are_word_pieces_that_join_back_exactly() -> None:
    text = "Hello,  world!\nNew line "
    assert tokenize(text) == ["Hello,  ", "world!\n", "New ", "line "]
    assert "".join(tokenize(text)) == text


def test_decoding_stops_at_max_tokens_with_length() -> None:
    outputs = list(decode(iter(["a ", "b ", "c "]), ask("x", max_tokens=2), GenerationContext(), prompt_tokens=3))
    assert text_of(outputs) == "a b "
    assert outputs[-1].finish_reason == "length" and outputs[-1].usage == saturating_usage(3, 2)


def test_a_stop_string_split_across_tokens_never_leaks() -> None:
    tokens = ["The ", "end", "ing ", "of ", "it"]
    outputs = list(validate(decode(iter(tokens), ask("x", stop=["ding of"]), GenerationContext(), prompt_tokens=1)))
    assert text_of(outputs) == "The en"
    assert outputs[-1].finish_reason == "stop"
    assert outputs[-1].usage == saturating_usage(1, 4)  # the tokens holding the stop string were generated


def test_text_that_only_looked_like_a_stop_string_is_released() -> None:
    outputs = list(decode(iter(["a ", "b", "c"]), ask("x", stop=["bd"]), GenerationContext(), prompt_tokens=1))
    assert text_of(outputs) == "a bc" and outputs[-1].finish_reason == "stop"


def test_a_stopped_context_ends_decoding_with_cancelled_even_during_a_pace_wait() -> None:
    ctx = GenerationContext()
    outputs = decode(iter(["a ", "b ", "c "]), ask("x"), ctx, prompt_tokens=1, pace=30)
    assert next(outputs).text == "a "
    threading.Timer(0.05, ctx.stop).start()  # from another thread, while decoding waits
    rest: List[Output] = []
    finishes(lambda: rest.extend(outputs))
    assert rest == [Output.final("cancelled", saturating_usage(1, 1))]


# -- the lifecycle ------------------------------------------------------------------------------


class Counting(Engine):
    """Counts its loads and clean-ups; can fail to load halfway."""

    name = "counting"

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.loads = 0
        self.cleanups = 0
        self.resource: object = None
        self.load_gate = threading.Event()

    def _load(self) -> EngineConfig:
        self.loads += 1
        self.load_gate.wait(5)
        self.resource = object()
        if self.fail:
            raise OSError("the weights are missing")
        return EngineConfig(model="counting", context_length=10)

    def _generate(self, request: GenerationRequest, ctx: GenerationContext) -> Iterator[Output]:
        yield Output.final("stop", USAGE)

    def _cleanup(self) -> None:
        self.cleanups += 1
        self.resource = None


def test_many_threads_starting_an_engine_load_it_once() -> None:
    engine = Counting()
    configs: List[EngineConfig] = []
    threads = [threading.Thread(target=lambda: configs.append(engine.start())) for _ in range(8)]
    for thread in threads:
        thread.start()
    engine.load_gate.set()
    for thread in threads:
        thread.join(10)
    assert engine.loads == 1 and len(configs) == 8 and len(set(configs)) == 1


def test_a_failed_start_cleans_up_what_it_acquired_and_raises_an_engine_error() -> None:
    engine = Counting(fail=True)
    engine.load_gate.set()
    with pytest.raises(EngineError, match="failed to start: OSError: the weights are missing"):
        engine.start()
    assert engine.cleanups == 1 and engine.resource is None
    with pytest.raises(EngineError, match="cleaned up"):
        engine.start()


def test_cleanup_runs_once_from_many_threads_and_is_safe_unstarted() -> None:
    engine = Counting()
    threads = [threading.Thread(target=engine.cleanup) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert engine.cleanups == 1
    engine.cleanup()
    assert engine.cleanups == 1
    assert engine.health()["status"] == "stopped"


def test_generate_needs_a_started_engine() -> None:
    with pytest.raises(EngineError, match="is new"):
        EchoEngine().generate(ask("hi"), GenerationContext())


def test_drain_refuses_new_work_and_waits_for_the_running_generation() -> None:
    gate = Gate()
    engine = ScriptedEngine(["a", gate, "b"])
    engine.start()
    outputs = engine.generate(ask("x"), GenerationContext())
    assert next(outputs).text == "a"
    assert engine.drain(timeout=0.05) is False  # still running
    with pytest.raises(EngineError, match="draining"):
        engine.generate(ask("y"), GenerationContext())
    gate.open()
    assert [o.text for o in outputs] == ["b", ""]
    assert engine.drain(timeout=5) is True
    assert engine.health()["running"] == 0


def test_cleanup_aborts_running_generations() -> None:
    engine = ScriptedEngine(["a", Gate(), "never"])
    engine.start()
    outputs = engine.generate(ask("x"), GenerationContext())
    assert next(outputs).text == "a"
    threading.Timer(0.05, engine.cleanup).start()
    rest: List[Output] = []
    finishes(lambda: rest.extend(outputs))
    assert [o.finish_reason for o in rest] == ["cancelled"]


def test_a_generation_dropped_unread_is_no_longer_running() -> None:
    engine = EchoEngine()
    engine.start()
    engine.generate(ask("hi"), GenerationContext())  # never read, dropped at once
    assert engine.drain(timeout=5) is True


def test_a_context_keeps_its_first_stop_reason_and_wakes_waiters() -> None:
    ctx = GenerationContext()
    assert not ctx.is_stopped() and ctx.wait(0) is False and ctx.stop_reason is None
    ctx.stop(Stop.PAUSED)
    ctx.stop(Stop.CANCELLED)
    assert ctx.is_stopped() and ctx.stop_reason is Stop.PAUSED and ctx.wait(30) is True
    assert "stopped (paused)" in repr(ctx)


def test_a_context_stops_for_a_stop_reason_not_for_text() -> None:
    ctx = GenerationContext()
    with pytest.raises(minillm.InvalidArgumentError, match="'paused'"):
        ctx.stop("paused")  # type: ignore[arg-type]
    assert not ctx.is_stopped()


@pytest.mark.parametrize("reason", list(Stop))
def test_abort_hands_its_reason_to_the_engine_which_ends_the_stream_cancelled(reason: Stop) -> None:
    seen: List[Stop | None] = []

    class Noting(ScriptedEngine):
        def _abort(self, ctx: GenerationContext) -> None:
            seen.append(ctx.stop_reason)

    engine = Noting(["a", Gate(), "never"], strict=True)
    engine.start()
    ctx = GenerationContext()
    outputs = engine.generate(ask("x"), ctx)
    assert next(outputs).text == "a"
    engine.abort(ctx, reason)
    engine.abort(ctx, Stop.CANCELLED)  # the first reason is kept
    assert seen == [reason, reason] and ctx.stop_reason is reason
    # Why is the context's to say; the stream's contract has one word for it.
    assert [o.finish_reason for o in outputs] == ["cancelled"]


def test_an_abort_without_a_reason_is_a_cancel() -> None:
    engine = EchoEngine()
    ctx = GenerationContext()
    engine.abort(ctx)
    assert ctx.stop_reason is Stop.CANCELLED


# -- the built-in engines -----------------------------------------------------------------------


def test_echo_answers_with_the_last_user_message_and_counts_real_tokens() -> None:
    request = GenerationRequest(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "say this back"}]},
        ]
    )
    outputs = run(EchoEngine(), request)
    assert [o.text for o in outputs[:-1]] == ["say ", "this ", "back"]
    assert outputs[-1].usage == saturating_usage(len(tokenize(request.prompt())), 3)


def test_echo_with_nothing_to_echo_stops_at_once() -> None:
    outputs = run(EchoEngine(), GenerationRequest(messages=[{"role": "system", "content": "hi"}]))
    assert outputs == [Output.final("stop", saturating_usage(2, 0))]


def test_a_prompt_longer_than_the_context_is_refused_before_any_output() -> None:
    engine = EchoEngine(context_length=3)
    engine.start()
    with pytest.raises(PromptTooLongError) as caught:
        engine.generate(ask("one two three four five"), GenerationContext())
    assert (caught.value.prompt_tokens, caught.value.context_length) == (6, 3)
    assert engine.drain(timeout=5)


@pytest.mark.parametrize("prompt", ["what does minillm promise about cost?", "How do I cancel a stream?", "hello"])
def test_ngram_writes_sentences_that_begin_where_the_prompt_points(prompt: str) -> None:
    engine = NGramEngine()
    outputs = run(engine, ask(prompt))
    text = text_of(outputs)
    assert outputs[-1].finish_reason == "stop"
    assert text[0].isupper() and text.endswith((".", "!", "?"))
    assert text.count(".") + text.count("?") + text.count("!") >= 3
    assert outputs[-1].usage is not None and outputs[-1].usage.completion_tokens == len(text.split())
    assert run(engine, ask(prompt)) == outputs  # the prompt seeds it: the same prompt, the same answer


def test_ngram_follows_seed_temperature_and_max_tokens() -> None:
    engine = NGramEngine()
    question = "How do I cancel a stream?"
    greedy = text_of(run(engine, ask(question, temperature=0)))
    assert greedy == text_of(run(engine, ask(question, temperature=0, seed=99)))  # no randomness left
    seeded = {text_of(run(engine, ask(question, seed=seed))) for seed in range(6)}
    assert len(seeded) > 1
    short = run(engine, ask(question, max_tokens=4))
    assert len(short) == 5 and short[-1].finish_reason == "length"
    assert engine.health()["vocabulary"] > 100


def test_ngram_learns_from_a_given_text_and_refuses_one_it_cannot_learn_from() -> None:
    engine = NGramEngine(text="The cat sat down. The cat ran off. The dog sat down.")
    assert text_of(run(engine, ask("the dog"))).startswith("The ")
    with pytest.raises(EngineError, match="no sentence"):
        NGramEngine(text="too short").start()


def test_scripted_replays_each_step_kind_in_order() -> None:
    gate = Gate()
    gate.open()
    engine = ScriptedEngine(
        ["Hel", Pause(0), "lo", gate],
        ["x", Finish("length")],
        ["y", Fail("the model crashed")],
    )
    first = run(engine, ask("one"))
    assert [o.text for o in first] == ["Hel", "lo", ""] and first[-1].finish_reason == "stop"
    second = run(engine, ask("two"))
    assert second[-1].finish_reason == "length" and second[-1].usage == saturating_usage(2, 1)
    with pytest.raises(EngineError, match="the model crashed"):
        run(engine, ask("three"))
    with pytest.raises(EngineError, match="no script left"):
        run(engine, ask("four"))
    assert [r.texts("user") for r in engine.requests] == [["one"], ["two"], ["three"], ["four"]]


def test_scripted_can_repeat_its_last_script_and_be_told_more() -> None:
    engine = ScriptedEngine(["a"], repeat=True)
    assert text_of(run(engine, ask("1"))) == text_of(run(engine, ask("2"))) == "a"
    engine.add("b")  # queued behind the repeating one, which now repeats no more
    assert text_of(run(engine, ask("3"))) == "a" and text_of(run(engine, ask("4"))) == "b"


def test_a_strict_engine_raises_on_a_violation_of_its_own() -> None:
    engine = ScriptedEngine(["a", Output("b", usage=USAGE)], strict=True)
    engine.start()
    with pytest.raises(EngineContractError, match="not terminal but carries usage"):
        list(engine.generate(ask("x"), GenerationContext()))


@pytest.mark.parametrize("make", [EchoEngine, NGramEngine], ids=["echo", "ngram"])
def test_every_built_in_engine_is_safe_with_many_concurrent_generations(make: Any) -> None:
    engine: Engine = make(strict=True)
    engine.start()
    results: List[str] = []
    lock = threading.Lock()

    def one(n: int) -> None:
        text = text_of(list(engine.generate(ask(f"number {n} please"), GenerationContext())))
        with lock:
            results.append(text)

    threads = [threading.Thread(target=one, args=(n % 4,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 32
    assert all(results.count(text) == 8 for text in results)  # 4 prompts, 8 identical answers each
    assert engine.drain(timeout=5)
    engine.cleanup()


# -- the registry ------------------------------------------------------------------------------------


def test_the_built_ins_are_found_by_name_and_shared() -> None:
    assert isinstance(get_engine("echo"), EchoEngine) and get_engine("echo") is get_engine("echo")
    assert isinstance(get_engine("ngram"), NGramEngine)


def test_an_unknown_engine_is_a_configuration_error_naming_the_known_ones() -> None:
    with pytest.raises(minillm.ConfigurationError, match=r"no engine named 'nope'.*echo, ngram"):
        get_engine("nope")


def test_engines_can_be_registered_replaced_and_imported_by_path() -> None:
    engine = ScriptedEngine(["hi"])
    with registered("mine", engine):
        assert get_engine("mine") is engine
        with pytest.raises(minillm.ConfigurationError, match="already registered"):
            register("mine", EchoEngine())
        register("mine", EchoEngine, replace=True)
        assert isinstance(get_engine("mine"), EchoEngine)
    with pytest.raises(minillm.ConfigurationError, match="no engine named 'mine'"):
        get_engine("mine")
    assert isinstance(get_engine("minillm.engines:EchoEngine"), EchoEngine)
    with pytest.raises(minillm.ConfigurationError, match="cannot load the engine"):
        get_engine("minillm.engines:Missing")
    with pytest.raises(minillm.ConfigurationError, match="without '/'"):
        register("a/b", EchoEngine())
    unregister("never-registered")  # harmless
