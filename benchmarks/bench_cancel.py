"""Cancellation: how long a cancel() from another thread takes to wake a
reader blocked on the network, and whether 1,000 cancelled streams leak
sockets or threads."""

from __future__ import annotations

import os
import statistics
import threading
import time
from typing import Dict, List

import minillm
from minillm.testing import Hang, Reply, ScriptedServer, chat_stream


def _open_fds() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd")) if os.path.isdir(f"/proc/{os.getpid()}/fd") else -1


def cancel_latency(rounds: int) -> List[float]:
    """Milliseconds from cancel() to the blocked reader's loop ending."""
    latencies: List[float] = []
    with ScriptedServer() as server:
        client = minillm.Client("openai/bench", base_url=server.url)
        for _ in range(rounds):
            server.reply(Reply.sse([*chat_stream(["a"], finish_reason=None, done=False), Hang()]))
            stream = client.stream("go")
            blocked = threading.Event()
            ended: List[float] = []

            def read(
                stream: minillm.TrackedStream = stream, blocked: threading.Event = blocked, ended: List[float] = ended
            ) -> None:
                for _ in stream:
                    blocked.set()
                ended.append(time.perf_counter())

            reader = threading.Thread(target=read)
            reader.start()
            blocked.wait(10)
            time.sleep(0.005)  # let the reader get back into recv()
            started = time.perf_counter()
            stream.cancel()
            reader.join(10)
            latencies.append((ended[0] - started) * 1000)
        client.close()
    return latencies


def leak_check(streams: int) -> Dict[str, float]:
    """Open 'streams' streams one after another, cancel each after its first chunk."""
    with ScriptedServer() as server:
        client = minillm.Client("openai/bench", base_url=server.url)
        server.reply(Reply.sse([*chat_stream(["a"], finish_reason=None, done=False), Hang()]))
        with client.stream("warm up") as stream:
            next(iter(stream))
        fds_before, threads_before = _open_fds(), threading.active_count()
        for _ in range(streams):
            server.reply(Reply.sse([*chat_stream(["a"], finish_reason=None, done=False), Hang()]))
            stream = client.stream("go")
            next(iter(stream))
            stream.cancel()
        fds_after, threads_after = _open_fds(), threading.active_count()
        client.close()
    return {
        "open fds before": fds_before,
        "open fds after": fds_after,
        "threads before": threads_before,
        "threads after": threads_after,
    }


def main(rounds: int = 50, streams: int = 1000) -> Dict[str, float]:
    latencies = cancel_latency(rounds)
    leaks = leak_check(streams)
    results = {
        "cancel latency median (ms)": statistics.median(latencies),
        "cancel latency max (ms)": max(latencies),
        **leaks,
    }
    print(f"cancellation ({rounds} blocked readers; {streams} streams cancelled after their first chunk):")
    for name, value in results.items():
        print(f"  {name:32s} {value:8.2f}")
    return results


if __name__ == "__main__":
    main()
