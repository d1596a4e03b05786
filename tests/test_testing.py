"""minillm.testing: the scripted server and transcript builders users test with."""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List

import requests

from minillm.accumulate import StreamState, accumulate
from minillm.providers import PROVIDERS, ProviderConfig
from minillm.testing import Gate, Reply, ScriptedServer, chat_stream, chat_usage, sse


def test_queued_replies_are_served_in_order_most_specific_queue_first(server: ScriptedServer) -> None:
    server.reply(Reply.text("any 1"), Reply.text("any 2"))
    server.reply(Reply.text("for /a"), path="/a")
    server.reply(Reply.text("GET /a"), method="GET", path="/a")
    assert requests.post(server.url + "/a", timeout=5).text == "for /a"
    assert requests.get(server.url + "/a", timeout=5).text == "GET /a"
    assert requests.post(server.url + "/a", timeout=5).text == "any 1"
    assert requests.post(server.url + "/b", timeout=5).text == "any 2"
    missing = requests.post(server.url + "/b", timeout=5)
    assert missing.status_code == 404 and "no scripted reply for POST /b" in missing.json()["error"]["message"]


def test_a_route_answers_whatever_the_queue_does_not(server: ScriptedServer) -> None:
    server.route("POST", "/echo", lambda request: Reply.json({"got": request.json()}))
    assert requests.post(server.url + "/echo", json={"x": 1}, timeout=5).json() == {"got": {"x": 1}}


def test_requests_are_recorded_with_method_path_query_headers_and_body(server: ScriptedServer) -> None:
    server.reply(Reply.text("ok"))
    requests.post(server.url + "/p?id=gen-1&x=2", data=b'{"a": 1}', headers={"X-Thing": "yes"}, timeout=5)
    assert server.wait_for_requests(1)
    [request] = server.requests
    assert (request.method, request.path, request.query) == ("POST", "/p", {"id": ["gen-1"], "x": ["2"]})
    assert request.headers["x-thing"] == "yes" and request.json() == {"a": 1}
    assert request.finished.wait(5)


def test_replies_are_sent_in_http_chunks_as_scripted(server: ScriptedServer) -> None:
    gate = Gate()
    server.reply(Reply(body=[b"one", gate, b"two"]))
    response = requests.get(server.url, stream=True, timeout=5)
    pieces = response.raw.read_chunked()
    assert next(pieces) == b"one"
    gate.open()
    assert next(pieces) == b"two"
    response.close()


def test_a_hung_reply_notices_when_the_client_leaves(server: ScriptedServer) -> None:
    from minillm.testing import Hang

    server.reply(Reply(body=[b"start", Hang()]))
    response = requests.get(server.url, stream=True, timeout=5)
    connection = response.raw.connection
    assert connection is not None
    sock = connection.sock
    pieces = response.raw.read_chunked()
    assert next(pieces) == b"start"
    sock.shutdown(2)
    response.close()
    assert server.requests[0].disconnected.wait(10)


def test_transcripts_are_what_the_adapters_parse() -> None:
    pieces = chat_stream(["Hel", "lo"], usage=chat_usage(7, 2, cost=0.5, is_byok=False))
    adapter = PROVIDERS["openrouter"](ProviderConfig(provider="openrouter", model="m", base_url="http://x"))
    state = StreamState()
    for event in adapter.stream_events(pieces):
        accumulate(state, event)
    assert state.text == "Hello" and state.done and state.usage is not None
    assert (state.usage.prompt_tokens, state.usage.completion_tokens, str(state.usage.cost)) == (7, 2, "0.5")
    assert sse({"a": 1}, event="error") == b'event: error\ndata: {"a":1}\n\n'
    assert sse("[DONE]") == b"data: [DONE]\n\n"


def test_the_server_serves_clients_concurrently(server: ScriptedServer) -> None:
    gate = Gate()
    server.reply(Reply(body=[gate, b"slow"]), path="/slow")
    server.reply(Reply.text("fast"), path="/fast")
    slow = threading.Thread(target=lambda: requests.get(server.url + "/slow", timeout=10))
    slow.start()
    assert requests.get(server.url + "/fast", timeout=5).text == "fast"
    gate.open()
    slow.join(10)


# -- the batch emulator ------------------------------------------------------------------------


def _anthropic_batch(url: str, count: int, **headers: str) -> requests.Response:
    def item(n: int) -> Dict[str, Any]:
        params = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": f"q{n}"}]}
        return {"custom_id": f"c-{n}", "params": params}

    keyed = {"x-api-key": "k", "anthropic-version": "2023-06-01", **headers}
    return requests.post(
        url + "/v1/messages/batches", json={"requests": [item(n) for n in range(count)]}, headers=keyed, timeout=5
    )


def test_the_batch_emulator_moves_a_batch_on_one_step_a_poll_and_shuffles_its_results() -> None:
    from minillm.testing import BatchServer

    with BatchServer(steps=2) as server:
        made = _anthropic_batch(server.url, 8).json()
        keyed = {"x-api-key": "k", "anthropic-version": "2023-06-01"}

        def poll() -> Dict[str, Any]:
            url = f"{server.url}/v1/messages/batches/{made['id']}"
            return dict(requests.get(url, headers=keyed, timeout=5).json())

        polls = [poll()]
        while polls[-1]["processing_status"] != "ended":
            polls.append(poll())
        assert [p["request_counts"]["processing"] for p in polls] == [4, 0, 0]
        assert polls[-1]["request_counts"]["succeeded"] == 8 and polls[0]["request_counts"]["succeeded"] == 0
        lines = requests.get(polls[-1]["results_url"], headers=keyed, timeout=5).text.splitlines()
        order = [json.loads(line)["custom_id"] for line in lines]
        assert sorted(order) == sorted(f"c-{n}" for n in range(8)) and order != [f"c-{n}" for n in range(8)]
        first = json.loads(lines[0])["result"]["message"]
        assert first["content"][0]["text"] == "Q" + first["id"].rsplit("-", 1)[1]
        assert server.seen("create") == 1 and server.seen("retrieve") == 3 and server.seen("results") == 1


def test_the_batch_emulator_refuses_requests_without_a_key_and_lists_newest_first() -> None:
    from minillm.testing import BatchServer

    with BatchServer() as server:
        assert _anthropic_batch(server.url, 1, **{"x-api-key": ""}).status_code == 401
        assert requests.get(server.url + "/v1/batches", timeout=5).status_code == 401
        ids = [_anthropic_batch(server.url, 1).json()["id"] for _ in range(3)]
        keyed = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
        page = requests.get(server.url + "/v1/messages/batches?limit=2", headers=keyed, timeout=5).json()
        assert [b["id"] for b in page["data"]] == ids[::-1][:2] and page["has_more"] is True
        rest = requests.get(
            f"{server.url}/v1/messages/batches?limit=2&after_id={page['last_id']}", headers=keyed, timeout=5
        ).json()
        assert [b["id"] for b in rest["data"]] == [ids[0]] and rest["has_more"] is False


def test_a_held_batch_step_is_done_at_once_and_answered_when_the_gate_opens() -> None:
    from minillm.testing import BatchServer

    with BatchServer() as server:
        gate = server.hold("create")
        answers: List[requests.Response] = []
        sender = threading.Thread(target=lambda: answers.append(_anthropic_batch(server.url, 2)))
        sender.start()
        assert server.wait_for("create")
        assert len(server.batches) == 1 and answers == []  # made, not yet answered
        gate.open()
        sender.join(10)
        assert answers[0].json()["id"] == server.batches[0].id
