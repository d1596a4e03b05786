"""Streaming throughput: events per second through minillm, beside the raw
baselines and the official SDK, on one loopback server in the same run.

The server runs in its own process (so it never competes with the client
for the GIL), pre-renders a stream -- one SSE event per HTTP chunk, chunked
transfer encoding -- and writes it in one go, so the client side is what is
measured. Two formats: OpenAI Chat Completions and Anthropic Messages.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

from minillm.testing import Reply, anthropic_stream, chat_stream, chat_usage


def chat_reply(chunks: int) -> Reply:
    pieces = [f"tok{i} " for i in range(chunks)]
    return Reply.sse(chat_stream(pieces, usage=chat_usage(5, chunks)), coalesce=True)


def anthropic_reply(chunks: int) -> Reply:
    return Reply.sse(anthropic_stream([f"tok{i} " for i in range(chunks)]), coalesce=True)


# -- contenders: each returns how many events it read -----------------------------------------


def minillm_reader(model: str) -> Callable[[str], int]:
    def run(url: str) -> int:
        import minillm

        client = minillm.Client(model, base_url=url, api_key="bench", price=minillm.TokenPrice("1", "1"))
        count = 0
        with client.stream("go") as stream:
            for _ in stream:
                count += 1
        client.close()
        return count

    return run


def iter_lines_reader(path: str) -> Callable[[str], int]:
    def run(url: str) -> int:
        import requests

        count = 0
        with requests.post(url + path, json={"stream": True}, stream=True) as response:
            for line in response.iter_lines():
                if line.startswith(b"data: "):
                    payload = line[6:]
                    if payload == b"[DONE]":
                        break
                    json.loads(payload)
                    count += 1
        return count

    return run


def sseclient_reader(path: str) -> Callable[[str], int]:
    def run(url: str) -> int:
        import requests
        import sseclient

        count = 0
        with requests.post(url + path, json={"stream": True}, stream=True) as response:
            for event in sseclient.SSEClient(response.iter_content(chunk_size=None)).events():
                if event.data == "[DONE]":
                    break
                json.loads(event.data)
                count += 1
        return count

    return run


def openai_reader(url: str) -> int:
    import openai

    client = openai.OpenAI(base_url=url, api_key="bench")
    count = 0
    stream = client.chat.completions.create(model="bench", messages=[{"role": "user", "content": "go"}], stream=True)
    for _ in stream:
        count += 1
    client.close()
    return count


def litellm_reader(model: str) -> Callable[[str], int]:
    def run(url: str) -> int:
        import litellm

        count = 0
        for _ in litellm.completion(
            model=model, api_base=url, api_key="bench", messages=[{"role": "user", "content": "go"}], stream=True
        ):
            count += 1
        return count

    return run


def anthropic_sdk_reader(url: str) -> int:
    import anthropic

    client = anthropic.Anthropic(base_url=url, api_key="bench")
    count = 0
    with client.messages.stream(model="bench", max_tokens=10, messages=[{"role": "user", "content": "go"}]) as stream:
        for _ in stream:
            count += 1
    client.close()
    return count


FORMATS: Dict[str, Dict[str, object]] = {
    "chat": {
        "reply": chat_reply,
        "official": "openai-python",
        "contenders": {
            "minillm": minillm_reader("openai/bench"),
            "requests + iter_lines + json": iter_lines_reader("/chat/completions"),
            "requests + sseclient-py + json": sseclient_reader("/chat/completions"),
            "openai-python": openai_reader,
            "litellm": litellm_reader("openai/bench"),
        },
    },
    "anthropic": {
        "reply": anthropic_reply,
        "official": "anthropic-sdk-python",
        "contenders": {
            "minillm": minillm_reader("anthropic/bench"),
            "requests + iter_lines + json": iter_lines_reader("/v1/messages"),
            "requests + sseclient-py + json": sseclient_reader("/v1/messages"),
            "anthropic-sdk-python": anthropic_sdk_reader,
            "litellm": litellm_reader("anthropic/bench"),
        },
    },
}


SERVER = """
import sys, threading
sys.path[:0] = {paths!r}
import bench_stream
from minillm.testing import ScriptedServer
reply = bench_stream.FORMATS[{fmt!r}]["reply"]({chunks})
server = ScriptedServer().start()
server.route("POST", {path!r}, lambda request: reply)
print(server.url, flush=True)
sys.stdin.read()  # serve until the parent closes our stdin
server.stop()
"""


def serve(fmt: str, chunks: int) -> Tuple[subprocess.Popen, str]:  # type: ignore[type-arg]
    """A server process answering every request with the same stream."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = "/v1/messages" if fmt == "anthropic" else "/chat/completions"
    code = SERVER.format(paths=[here, *sys.path], fmt=fmt, chunks=chunks, path=path)
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def best_rate(fmt: str, name: str, url: str, repeats: int) -> Optional[float]:
    """The best of ``repeats`` timed runs of one contender, after a warm-up
    run (imports, the first connection). None if it is not installed."""
    run: Callable[[str], int] = FORMATS[fmt]["contenders"][name]  # type: ignore[index]
    try:
        run(url)
    except ImportError:
        return None
    rates: List[float] = []
    for _ in range(repeats):
        gc.collect()
        # CPU time, not wall time: the client is CPU-bound (the server has
        # written everything), and CPU time is blind to this machine's
        # scheduling noise, which swings wall-clock rates by 30%.
        started = time.process_time()
        count = run(url)
        rates.append(count / (time.process_time() - started))
    return max(rates)


def measure(fmt: str, chunks: int, repeats: int) -> Dict[str, float]:
    """Every contender in a fresh interpreter of its own, so that none pays
    for another's heap (openai-python alone brings a large one, which every
    garbage collection would then walk)."""
    results: Dict[str, float] = {}
    process, url = serve(fmt, chunks)
    here = os.path.abspath(__file__)
    try:
        for name in FORMATS[fmt]["contenders"]:  # type: ignore[attr-defined]
            done = subprocess.run(
                [sys.executable, here, "--format", fmt, "--contender", name, "--url", url, "--repeats", str(repeats)],
                capture_output=True,
                text=True,
            )
            # The rate is the last line (some libraries print on their own).
            lines = done.stdout.strip().splitlines()
            if done.returncode != 0 or not lines:
                error = (done.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"  ({name} failed: {error[:150]})")
            elif lines[-1] != "None":
                results[name] = float(lines[-1])
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(30)
    return results


def report(fmt: str, chunks: int, repeats: int) -> Dict[str, float]:
    results = measure(fmt, chunks, repeats)
    print(f"streaming {chunks} {fmt} events over loopback (best of {repeats}, per CPU-second of the client):")
    for name, rate in results.items():
        print(f"  {name:34s} {rate:10,.0f} events/s")
    if "minillm" in results:
        raw = results.get("requests + sseclient-py + json")
        if raw:
            print(f"  minillm / raw sseclient-py        {results['minillm'] / raw:10.2f}x")
        lines = results.get("requests + iter_lines + json")
        if lines:
            print(f"  minillm / raw iter_lines          {results['minillm'] / lines:10.2f}x")
        official: Optional[float] = results.get(str(FORMATS[fmt]["official"]))
        if official:
            print(f"  minillm / {FORMATS[fmt]['official']:23s} {results['minillm'] / official:10.1f}x")
    return results


def main(argv: Optional[List[str]] = None) -> Dict[str, Dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--format", choices=[*FORMATS, "all"], default="all")
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.contender:  # one contender, in this interpreter: print its rate
        print(best_rate(args.format, args.contender, args.url, args.repeats))
        return {}
    formats = list(FORMATS) if args.format == "all" else [args.format]
    out = {}
    for n, fmt in enumerate(formats):
        if n:
            print()
        out[fmt] = report(fmt, args.chunks, args.repeats)
    return out


if __name__ == "__main__":
    main()
