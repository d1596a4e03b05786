"""minillm.contrib.django, with Django's own test client: the cost model
and migration, the ORM sink, and streaming responses that settle exactly
once -- also when the browser disconnects."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Iterator, List

import attrs
import pytest

django = pytest.importorskip("django", reason="Django is a test dependency: pip install -e '.[test]'")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        SECRET_KEY="minillm-tests",
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=["django.contrib.contenttypes", "minillm.contrib.django"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        ROOT_URLCONF=__name__,
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()

from django.core.management import call_command  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test import Client as DjangoTestClient  # noqa: E402
from django.urls import path  # noqa: E402

import minillm  # noqa: E402
from minillm.contrib.django import DjangoSink, stream_response  # noqa: E402
from minillm.engines import Fail, ScriptedEngine, registered  # noqa: E402
from minillm.testing import Gate, ScriptedServer  # noqa: E402

from .test_corrections import IMPATIENT, Generations, cut_short  # noqa: E402

PRICE = minillm.TokenPrice(input_per_mtok="1", output_per_mtok="2")
SINK = DjangoSink()
ENGINE = ScriptedEngine()  # a new one for every test: see the fixture


def story(request: HttpRequest) -> HttpResponse:
    client = minillm.Client("local/django-story", on_cost=SINK, price=PRICE)
    stream = client.stream(request.GET.get("q", "go"), meta={"user_id": 7})
    return stream_response(stream, sse=request.GET.get("sse") == "1")


urlpatterns = [path("story", story)]


@pytest.fixture(autouse=True)
def database() -> Iterator[None]:
    from minillm.contrib.django.models import CostRecord

    global ENGINE
    call_command("migrate", verbosity=0)
    CostRecord.objects.all().delete()
    ENGINE = ScriptedEngine()
    with registered("django-story", ENGINE):
        yield


def body_of(response: Any) -> str:
    return "".join(piece.decode() for piece in response.streaming_content)


def test_the_migration_creates_the_table_the_model_describes() -> None:
    from django.db import connection

    from minillm.contrib.django.models import CostRecord

    columns = {
        c.name for c in connection.introspection.get_table_description(connection.cursor(), CostRecord._meta.db_table)
    }
    assert {"booking_id", "usd", "resolution", "meta", "booked_at", "cancelled", "byok", "corrects"} <= columns
    call_command("makemigrations", "minillm", "--check", "--dry-run", verbosity=0)  # no change left unmigrated


def test_a_streamed_answer_is_booked_once_through_the_orm() -> None:
    ENGINE.add("Once ", "upon ", "a time")
    response = DjangoTestClient().get("/story")
    assert response.status_code == 200 and response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["X-Accel-Buffering"] == "no"
    assert body_of(response) == "Once upon a time"
    response.close()
    assert SINK.count == 1
    cost, meta = SINK.records[0]
    assert (cost.completion_tokens, cost.cancelled, meta) == (3, False, {"user_id": 7})
    assert cost.usd == SINK.total() == Decimal("0.000008") and SINK.totals_by("user_id") == {7: cost.usd}


def test_entries_between_two_times_come_from_the_orm_with_when_they_were_booked() -> None:
    import datetime

    ENGINE.add("one")
    response = DjangoTestClient().get("/story")
    assert body_of(response) == "one"
    response.close()
    middle = datetime.datetime.now(datetime.timezone.utc)
    while datetime.datetime.now(datetime.timezone.utc) <= middle:
        pass
    ENGINE.add("two")
    response = DjangoTestClient().get("/story")
    assert body_of(response) == "two"
    response.close()
    entries = SINK.entries()
    assert [e.cost.completion_tokens for e in entries] == [1, 1] and entries[0].booked_at <= middle
    assert [e.booked_at for e in SINK.entries(since=middle)] == [entries[1].booked_at]
    assert [e.booked_at for e in SINK.entries(until=middle)] == [entries[0].booked_at]
    assert SINK.entries(since=middle.date() + datetime.timedelta(days=1)) == []
    with pytest.raises(minillm.InvalidArgumentError):
        SINK.entries(since="soon")


def test_a_browser_that_disconnects_mid_answer_still_settles_once() -> None:
    ENGINE.add("Once ", "upon ", Gate(), "never")
    response = DjangoTestClient().get("/story")
    pieces = iter(response.streaming_content)
    assert next(pieces) == b"Once " and next(pieces) == b"upon "
    assert SINK.count == 0  # still streaming
    response.close()  # what the WSGI server does when the client has gone
    assert ENGINE.wait_idle(timeout=10)
    assert SINK.count == 1
    cost, _ = SINK.records[0]
    assert cost.cancelled and cost.completion_tokens == 2 and cost.usd == Decimal("0.000006")  # 2 in, 2 out
    response.close()
    assert SINK.count == 1  # once


def test_server_sent_events_end_with_the_settled_cost() -> None:
    ENGINE.add("Hi ", "there")
    response = DjangoTestClient().get("/story?sse=1")
    assert response["Content-Type"] == "text/event-stream"
    events = [e for e in body_of(response).split("\n\n") if e]
    assert [json.loads(e.split("data: ", 1)[1]) for e in events[:2]] == [{"text": "Hi "}, {"text": "there"}]
    assert events[2].startswith("event: done\n")
    done = json.loads(events[2].split("data: ", 1)[1])
    assert Decimal(done["cost"]["usd"]) == SINK.total() and done["cost"]["resolution"] == "resolved"


def test_a_failure_mid_stream_is_an_error_event_and_books_what_was_produced() -> None:
    ENGINE.add("part ", Fail("out of memory"))
    events = [e for e in body_of(DjangoTestClient().get("/story?sse=1")).split("\n\n") if e]
    assert events[-1].startswith("event: error\n")
    error = json.loads(events[-1].split("data: ", 1)[1])
    assert "out of memory" in error["error"] and error["partial_text"] == "part "
    ((cost, _),) = SINK.records
    assert cost.failed and cost.resolution is minillm.Resolution.PARTIAL


def test_the_sink_books_each_booking_once_and_keeps_money_exact() -> None:
    bookings: List[minillm.CostInfo] = [
        minillm.CostInfo(
            usd=Decimal("0.00000602"),
            resolution=minillm.Resolution.RESOLVED,
            model="m",
            provider="p",
            booking_id=f"b{i}",
        )
        for i in range(50)
    ]
    for booking in bookings:
        SINK.record(booking, {"team": "search"})
        SINK.record(booking, {"team": "search"})  # a retried write
    SINK.record(minillm.CostInfo(usd=None, resolution=minillm.Resolution.UNKNOWN, model="m", provider="p"), {})
    assert SINK.count == 51
    assert SINK.total() == Decimal("0.000301") and SINK.totals_by_model() == {"p/m": Decimal("0.000301")}
    assert SINK.records[0][0] == bookings[0] and SINK.records[0][0].usd == Decimal("0.00000602")
    assert [cost.usd for cost, _ in SINK.records[-1:]] == [None]


def test_a_pending_booking_in_the_orm_is_corrected_once(server: ScriptedServer) -> None:
    generations = Generations(server)
    # Booked on the look-up thread, which an in-memory database does not
    # reach: the booking is carried over to the ORM as it was made.
    made = minillm.Ledger()
    client = minillm.Client("openrouter/x/y", api_key="sk-or-test", base_url=server.url, on_cost=made, lookup=IMPATIENT)
    cut_short(server, client, "gen-django", meta={"user_id": 7})
    for booked, meta in made.records:
        SINK.record(booked, meta)
    ((original, _),) = SINK.unresolved()
    assert original.resolution is minillm.Resolution.UNKNOWN
    generations.record("gen-django", 0.0042, prompt=7, completion=3)

    ((correction),) = SINK.resolve_pending(client).corrected

    assert SINK.records == [(original, {"user_id": 7}), (correction, {"user_id": 7})]
    assert correction.corrects == original.booking_id and correction.usd == Decimal("0.0042")
    assert SINK.unresolved() == [] and SINK.total() == Decimal("0.0042")
    assert SINK.resolve_pending(client).corrected == () and SINK.count == 2
    with pytest.raises(minillm.LedgerError, match="which this ledger does not have"):
        SINK.record(attrs.evolve(correction, booking_id="other", corrects="elsewhere"), {})
    assert SINK.count == 2
    client.close()
