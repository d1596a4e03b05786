"""The ``ngram`` engine: writes readable text offline, with no download.

A word-level trigram model built at start-up from a short text shipped in
the package (``data/minillm.txt``, an essay on minillm written for it). It
answers with a few sentences that begin where the prompt's words appear,
and then follows the words it has read: each next word is drawn from the
words that followed the previous two, weighted by how often they did.

Sampling is seeded by ``request.seed``, else by the prompt itself, so the
same prompt gets the same answer; ``temperature=0`` always takes the most
frequent next word.
"""

from __future__ import annotations

import bisect
import math
import random
import re
import zlib
from collections import Counter, defaultdict
from typing import Dict, FrozenSet, Iterator, List, Optional, Sequence, Tuple

from .base import EngineConfig, GenerationContext, GenerationRequest, Output
from .decoding import WordPieceEngine, decode

__all__ = ["NGramEngine"]

Pair = Tuple[str, str]

_SENTENCE_END = (".", "!", "?")
_WORD = re.compile(r"[a-z][a-z'-]+")


class _Successors:
    """The words seen after one pair, with cumulative weights for drawing."""

    __slots__ = ("cumulative", "total", "words")

    def __init__(self, counts: Counter) -> None:  # type: ignore[type-arg]
        # Most frequent first; ties keep the order the text gave them.
        ordered = sorted(counts.items(), key=lambda item: -item[1])
        self.words: List[str] = [w for w, _ in ordered]
        self.cumulative: List[float] = []
        self.total = 0.0
        for _, count in ordered:
            self.total += count
            self.cumulative.append(self.total)

    def draw(self, rng: random.Random, temperature: float) -> str:
        if temperature <= 0 or len(self.words) == 1:
            return self.words[0]
        if temperature == 1.0:
            return self.words[bisect.bisect_right(self.cumulative, rng.random() * self.total)]
        weights, running = [], 0.0
        previous = 0.0
        for bound in self.cumulative:
            running += (bound - previous) ** (1.0 / temperature)
            previous = bound
            weights.append(running)
        return self.words[bisect.bisect_right(weights, rng.random() * running)]


class _Model:
    """The trigram table and the sentence openings of one text."""

    def __init__(self, text: str) -> None:
        words = text.split()
        counts: Dict[Pair, Counter] = defaultdict(Counter)  # type: ignore[type-arg]
        for first, second, third in zip(words, words[1:], words[2:]):
            counts[(first, second)][third] += 1
        self.table: Dict[Pair, _Successors] = {pair: _Successors(c) for pair, c in counts.items()}
        #: each sentence's opening pair, with the words of that sentence
        self.openings: List[Tuple[Pair, FrozenSet[str]]] = []
        start = 0
        for i, word in enumerate(words):
            if word.endswith(_SENTENCE_END):
                if i - start >= 2 and (words[start], words[start + 1]) in self.table:
                    sentence = words[start : i + 1]
                    self.openings.append(((words[start], words[start + 1]), _keywords(" ".join(sentence))))
                start = i + 1
        #: how rare each sentence word is: log(sentences / sentences with the word)
        seen: Counter = Counter(w for _, sentence_words in self.openings for w in sentence_words)  # type: ignore[type-arg]
        self.rarity: Dict[str, float] = {w: math.log(len(self.openings) / n) for w, n in seen.items()}
        self.vocabulary = len(set(words))
        self.size = len(words)

    def opening(self, prompt: str, rng: random.Random) -> Pair:
        """A sentence opening whose sentence best matches ``prompt``: the
        most shared words, each weighted by how rare it is in the text."""
        wanted = _keywords(prompt)
        scored = [(round(sum(self.rarity[w] for w in wanted & words), 6), pair) for pair, words in self.openings]
        best = max(score for score, _ in scored)
        return rng.choice([pair for score, pair in scored if score == best])

    def words(self, prompt: str, rng: random.Random, temperature: float, sentences: int) -> Iterator[str]:
        """Words of ``sentences`` sentences, the first opening on ``prompt``."""
        first, second = self.opening(prompt, rng)
        yield first
        yield second
        ended = 0
        while True:
            successors = self.table.get((first, second))
            if successors is None:  # the end of the text: open a new sentence
                first, second = self.opening(prompt, rng)
                yield first
                yield second
                continue
            third = successors.draw(rng, temperature)
            yield third
            if third.endswith(_SENTENCE_END):
                ended += 1
                if ended >= sentences:
                    return
            first, second = second, third


def _keywords(text: str) -> FrozenSet[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if len(w) > 3)


def _spaced(words: Iterator[str]) -> Iterator[str]:
    """Word pieces as a tokenizer writes them: a space before every word but the first."""
    first = True
    for word in words:
        yield word if first else " " + word
        first = False


class NGramEngine(WordPieceEngine):
    """A trigram model over a shipped text.

    :param model: the model name it serves.
    :param text: the text to learn from (default: the shipped essay).
    :param sentences: how many sentences an answer has.
    :param pace: seconds between tokens (the demo uses it to read like a stream).
    """

    name = "ngram"

    def __init__(
        self,
        *,
        model: str = "ngram",
        text: Optional[str] = None,
        sentences: int = 3,
        context_length: int = 4096,
        max_tokens: int = 512,
        pace: float = 0.0,
        strict: bool = False,
    ) -> None:
        super().__init__(strict=strict)
        self._model_name = model
        self._text = text
        self._sentences = max(1, sentences)
        self._context_length = context_length
        self._max_tokens = max_tokens
        self._pace = pace
        self._model: Optional[_Model] = None

    def _load(self) -> EngineConfig:
        text = self._text if self._text is not None else _shipped_text()
        model = _Model(text)
        if not model.openings:
            raise ValueError("the text has no sentence of three words or more to learn from")
        self._model = model
        return EngineConfig(model=self._model_name, context_length=self._context_length)

    def _generate(self, request: GenerationRequest, ctx: GenerationContext) -> Iterator[Output]:
        model = self._model
        assert model is not None, "generate() checks that the engine started"
        prompt = request.prompt()
        prompt_tokens = self._measure(request)
        seed = request.seed if request.seed is not None else zlib.crc32(prompt.encode("utf-8"))
        temperature = 1.0 if request.temperature is None else request.temperature
        words = model.words(" ".join(_last(request.texts("user"))), random.Random(seed), temperature, self._sentences)
        return decode(
            _spaced(words), request, ctx, prompt_tokens=prompt_tokens, max_tokens=self._max_tokens, pace=self._pace
        )

    def _cleanup(self) -> None:
        self._model = None

    def _health(self) -> Dict[str, int]:
        model = self._model
        return {} if model is None else {"vocabulary": model.vocabulary, "corpus_words": model.size}


def _last(texts: Sequence[str]) -> List[str]:
    return list(texts[-1:])


def _shipped_text() -> str:
    from importlib import resources

    return resources.files("minillm.engines").joinpath("data/minillm.txt").read_text(encoding="utf-8")
