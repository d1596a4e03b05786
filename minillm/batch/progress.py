"""Progress of a batch, as a tqdm bar on stderr (when tqdm is installed) or
a callback: per result for the real-time runner, per poll for a provider
batch. tqdm is imported only when a bar is asked for."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any, Callable, Optional, Union

from ..money import usd_text
from .items import BatchResult

__all__ = ["PollReporter", "ResultReporter", "tqdm_bar"]


def tqdm_bar(total: int, initial: int = 0) -> Any:
    """A tqdm bar for a batch of ``total`` items, or None without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="item", desc="minillm batch", dynamic_ncols=True)


class ResultReporter:
    """Progress as results arrive: a tqdm bar (items, tokens, running cost),
    a callable, or nothing. Thread-safe: results arrive on worker threads."""

    def __init__(self, progress: Union[bool, Callable[[BatchResult], None]], total: int, already: int) -> None:
        self._callback = progress if callable(progress) else None
        self._bar: Optional[Any] = tqdm_bar(total, already) if progress is True else None
        self._tokens = 0
        self._usd = Decimal(0)
        self._lock = threading.Lock()

    def __call__(self, result: BatchResult) -> None:
        if self._callback is not None:
            self._callback(result)
        if self._bar is None:
            return
        with self._lock:
            if result.usage is not None:
                self._tokens += result.usage.total_tokens
            if result.cost is not None and result.cost.usd is not None:
                self._usd += result.cost.usd
            self._bar.set_postfix_str(f"{self._tokens:,} tokens, {usd_text(self._usd)}", refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class PollReporter:
    """Progress of a provider batch: a tqdm bar (items done and failed,
    money booked), a callable given each :class:`~minillm.batch.BatchProgress`,
    or nothing. One thread uses it."""

    def __init__(self, progress: Union[bool, Callable[[Any], None]], total: int) -> None:
        self._callback = progress if callable(progress) else None
        self._bar: Optional[Any] = tqdm_bar(total) if progress is True else None

    def __call__(self, progress: Any) -> None:
        if self._callback is not None:
            self._callback(progress)
        if self._bar is not None:
            self._bar.n = progress.done + progress.failed
            self._bar.set_postfix_str(
                f"{progress.failed} failed, {usd_text(progress.usd)}, {progress.status}", refresh=False
            )
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
