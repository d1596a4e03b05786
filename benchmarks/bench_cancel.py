"""Stopping: how long a cancel() from another thread, a CancellationToken,
and a total deadline take to end a reader blocked on a stalled server --
for every way a body can be framed -- against the 100 ms the contract
allows; and whether 1,000 cancelled streams leak sockets or threads."""

from __future__ import annotations

import contextlib
import os
import ssl
import statistics
import tempfile
import threading
import time
from typing import Dict, Iterator, List, Optional, Tuple

import minillm
from minillm.testing import Hang, Reply, ScriptedServer, chat_chunk, chat_stream, chat_usage, sse

#: (name, framing, keep_alive, HTTP version, TLS)
SHAPES: List[Tuple[str, str, bool, str, bool]] = [
    ("chunked, keep-alive", "chunked", True, "1.1", False),
    ("chunked, Connection: close", "chunked", False, "1.1", False),
    ("Content-Length, keep-alive", "length", True, "1.1", False),
    ("read to the close", "close", False, "1.1", False),
    ("HTTP/1.0", "close", False, "1.0", False),
    ("TLS, chunked, keep-alive", "chunked", True, "1.1", True),
    ("TLS, HTTP/1.0", "close", False, "1.0", True),
]


def _open_fds() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd")) if os.path.isdir(f"/proc/{os.getpid()}/fd") else -1


def _stalled(framing: str, keep_alive: bool, version: str) -> Reply:
    rest = chat_stream(["never", "sent"], usage=chat_usage(1, 2))
    reply = Reply.sse([sse(chat_chunk(content="a")), Hang(), *rest])
    return reply.framed(framing, keep_alive=keep_alive, http_version=version)


@contextlib.contextmanager
def _tls() -> Iterator[Optional[ssl.SSLContext]]:
    """A server context for 127.0.0.1, trusted by this process for the
    duration (None when trustme, from the test extra, is not installed)."""
    try:
        import trustme
    except ImportError:
        yield None
        return
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    with tempfile.TemporaryDirectory() as folder:
        bundle = os.path.join(folder, "ca.pem")
        authority.cert_pem.write_to_path(bundle)
        before = os.environ.get("REQUESTS_CA_BUNDLE")
        os.environ["REQUESTS_CA_BUNDLE"] = bundle
        try:
            yield context
        finally:
            if before is None:
                del os.environ["REQUESTS_CA_BUNDLE"]
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = before


#: How long the contract allows from a stop to the reader's return.
ALLOWED_MS = 100.0

#: The ways a blocked read is stopped.
HOWS = ("cancel", "token", "deadline")


def stop_latency(server: ScriptedServer, reply: Reply, rounds: int, *, how: str) -> List[float]:
    """Milliseconds from the stop -- ``cancel()``, a token's ``cancel()``, or
    the total deadline's instant -- to the blocked reader's loop ending."""
    deadline = how == "deadline"
    total = 0.2 if deadline else None
    client = minillm.Client("openai/bench", base_url=server.url, timeout=minillm.Timeout(read=30, total=total))
    latencies: List[float] = []
    for _ in range(rounds):
        server.reply(reply)
        started = time.perf_counter()
        token = minillm.CancellationToken()
        stream = client.stream("go", cancel=token)
        blocked = threading.Event()
        ended: List[float] = []

        def read(
            stream: minillm.TrackedStream = stream, blocked: threading.Event = blocked, ended: List[float] = ended
        ) -> None:
            try:
                for _ in stream:
                    blocked.set()
            except minillm.APITimeoutError:
                pass
            ended.append(time.perf_counter())

        reader = threading.Thread(target=read)
        reader.start()
        blocked.wait(10)
        if deadline:
            stop_at = started + (total or 0)
        else:
            time.sleep(0.005)  # let the reader get back into recv()
            stop_at = time.perf_counter()
            if how == "token":
                token.cancel()
            else:
                stream.cancel()
        reader.join(10)
        stream.close()
        latencies.append((ended[0] - stop_at) * 1000)
    client.close()
    return latencies


def leak_check(streams: int) -> Dict[str, float]:
    """Open ``streams`` streams one after another, cancel each after its first chunk."""
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
    results: Dict[str, float] = {}
    print(f"stopping a reader blocked on a stalled server ({rounds} rounds each; ms from the stop to the loop's end):")
    print(f"  {'framing':32s}" + "".join(f" {how + ' median':>16s} {'max':>7s}" for how in HOWS))
    worst = 0.0
    with _tls() as context:
        for name, framing, keep_alive, version, tls in SHAPES:
            if tls and context is None:
                print(f"  {name:32s} (skipped: trustme is not installed)")
                continue
            line = f"  {name:32s}"
            with ScriptedServer(tls=context if tls else None) as server:
                reply = _stalled(framing, keep_alive, version)
                for how in HOWS:
                    latencies = stop_latency(
                        server, reply, rounds if how != "deadline" else max(rounds // 5, 1), how=how
                    )
                    results[f"{how} median, {name} (ms)"] = statistics.median(latencies)
                    worst = max(worst, max(latencies))
                    line += f" {statistics.median(latencies):16.2f} {max(latencies):7.2f}"
            print(line)
    results["slowest stop (ms)"] = worst
    verdict = "within" if worst <= ALLOWED_MS else "OVER"
    print(f"  slowest stop of all: {worst:.2f} ms -- {verdict} the {ALLOWED_MS:.0f} ms allowed")
    leaks = leak_check(streams)
    results.update(leaks)
    print(f"{streams} streams cancelled after their first chunk:")
    for name, value in leaks.items():
        print(f"  {name:32s} {value:8.0f}")
    return results


if __name__ == "__main__":
    main()
