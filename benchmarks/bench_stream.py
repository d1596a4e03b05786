"""Streaming throughput: chunks per second through minillm, beside the raw
baselines, on one loopback server in the same run.

The server pre-renders a Chat Completions stream (one SSE event per HTTP
chunk, chunked transfer encoding) and writes it in one go, so the client
side is what is measured.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable, Dict, List

from minillm.testing import Reply, ScriptedServer, chat_stream, chat_usage


def _reply(chunks: int) -> Reply:
    pieces = [f"tok{i} " for i in range(chunks)]
    return Reply.sse(chat_stream(pieces, usage=chat_usage(5, chunks), finish_reason=None), coalesce=True)


def run_minillm(url: str) -> int:
    import minillm

    client = minillm.Client("openai/bench", base_url=url, price=minillm.TokenPrice("1", "1"))
    count = 0
    with client.stream("go") as stream:
        for _ in stream:
            count += 1
    client.close()
    return count


def run_iter_lines(url: str) -> int:
    import requests

    count = 0
    with requests.post(url + "/chat/completions", json={"stream": True}, stream=True) as response:
        for line in response.iter_lines():
            if line.startswith(b"data: "):
                payload = line[6:]
                if payload == b"[DONE]":
                    break
                json.loads(payload)
                count += 1
    return count


def run_sseclient(url: str) -> int:
    import requests
    import sseclient

    count = 0
    with requests.post(url + "/chat/completions", json={"stream": True}, stream=True) as response:
        for event in sseclient.SSEClient(response.iter_content(chunk_size=None)).events():
            if event.data == "[DONE]":
                break
            json.loads(event.data)
            count += 1
    return count


def run_openai(url: str) -> int:
    import openai

    client = openai.OpenAI(base_url=url, api_key="bench")
    count = 0
    stream = client.chat.completions.create(model="bench", messages=[{"role": "user", "content": "go"}], stream=True)
    for _ in stream:
        count += 1
    client.close()
    return count


CONTENDERS: Dict[str, Callable[[str], int]] = {
    "minillm": run_minillm,
    "requests + iter_lines + json": run_iter_lines,
    "requests + sseclient-py + json": run_sseclient,
    "openai-python": run_openai,
}


def measure(chunks: int, repeats: int) -> Dict[str, float]:
    results: Dict[str, float] = {}
    with ScriptedServer() as server:
        for name, run in CONTENDERS.items():
            rates: List[float] = []
            server.reply(_reply(min(chunks, 1000)))
            try:
                run(server.url)  # warm up: imports, the first connection
            except ImportError:
                continue
            for _ in range(repeats):
                server.reply(_reply(chunks))
                started = time.perf_counter()
                try:
                    count = run(server.url)
                except ImportError:
                    break
                rates.append(count / (time.perf_counter() - started))
            if rates:
                results[name] = max(rates)
    return results


def main(argv: List[str] | None = None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    results = measure(args.chunks, args.repeats)
    print(f"streaming {args.chunks} chunks over loopback (best of {args.repeats}):")
    for name, rate in results.items():
        print(f"  {name:34s} {rate:10,.0f} chunks/s")
    if "minillm" in results:
        raw = results.get("requests + sseclient-py + json")
        if raw:
            print(f"  minillm / raw sseclient-py        {results['minillm'] / raw:10.2f}x")
        official = results.get("openai-python")
        if official:
            print(f"  minillm / openai-python           {results['minillm'] / official:10.1f}x")
    return results


if __name__ == "__main__":
    main()
