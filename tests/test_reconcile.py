"""Reconciliation: a ledger beside OpenAI's costs, Anthropic's cost report
and OpenRouter's generations -- the matching rule, the exact money, the
plain-data form, and the wire against the loopback account emulators."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any, Dict, Iterator, List, Optional

import pytest

import minillm
from minillm import CostInfo, Resolution
from minillm.accounting.ledgers.base import Entry
from minillm.accounting.reconcile import Charge, Reconciliation, Row, Unmatched, compare, model_key
from minillm.accounting.reconcile.openai import line_item_model
from minillm.testing import Billing, BillingServer, CostServer, Plan, Reply

from .conftest import SleepRecorder

KEY = "sk-admin-0123456789abcdefSECRET"
DAY = datetime.date(2026, 11, 1)
NEXT = datetime.date(2026, 11, 2)


def at(day: datetime.date, hour: int = 12) -> datetime.datetime:
    return datetime.datetime(day.year, day.month, day.day, hour, tzinfo=datetime.timezone.utc)


def cost(usd: Optional[str], model: str = "gpt-4o-mini", provider: str = "openai", **fields: Any) -> CostInfo:
    resolution = fields.pop("resolution", Resolution.RESOLVED if usd is not None else Resolution.UNKNOWN)
    return CostInfo(
        usd=None if usd is None else Decimal(usd), resolution=resolution, model=model, provider=provider, **fields
    )


def entry(usd: Optional[str], day: datetime.date = DAY, **fields: Any) -> Entry:
    return Entry(cost(usd, **fields), {}, at(day))


@pytest.fixture
def account() -> Iterator[CostServer]:
    with CostServer(key=KEY, page_size=2) as running:
        yield running


def book(ledger: minillm.Ledger, *costs: CostInfo) -> List[datetime.date]:
    """Book ``costs``; the UTC day each was booked on."""
    for one in costs:
        ledger.record(one, {})
    return [e.booked_at.date() for e in ledger.entries()][-len(costs) :]


# -- the matching rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("GPT-4o-Mini", "gpt-4o-mini"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-0", "claude-sonnet-4"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("anthropic/claude-haiku-4.5", "anthropic/claude-haiku-4.5"),
    ],
)
def test_models_are_matched_without_their_snapshot_date_alias_suffix_or_case(name: str, key: str) -> None:
    assert model_key(name) == key


@pytest.mark.parametrize(
    ("line_item", "model"),
    [
        ("gpt-4o-mini-2024-07-18, input", "gpt-4o-mini-2024-07-18"),
        ("gpt-4o-mini-2024-07-18, cached input", "gpt-4o-mini-2024-07-18"),
        ("evals | gpt-4o-mini-2024-07-18, input", "gpt-4o-mini-2024-07-18"),
        ("gpt-audio-mini-2025-12-15 audio, input", "gpt-audio-mini-2025-12-15"),
        ("gpt-image-2-2026-04-21 image, cached input", "gpt-image-2-2026-04-21"),
        ("gpt-4o, images", "gpt-4o"),
        ("web search tool calls", None),
        ("assistants api | file search", None),
    ],
)
def test_an_openai_line_item_names_its_model_or_none(line_item: str, model: Optional[str]) -> None:
    assert line_item_model(line_item) == model


# -- comparing, without I/O -----------------------------------------------------------------------


def test_rows_set_each_day_and_model_beside_the_charges_and_the_rest_is_unmatched() -> None:
    entries = [
        entry("0.10"),
        entry("0.05", model="gpt-4o-mini-2024-07-18"),
        entry("0.30", day=NEXT),
        entry("2", model="gpt-4.1"),
    ]
    charges = [
        Charge(DAY, "gpt-4o-mini-2024-07-18", Decimal("0.0999")),
        Charge(DAY, "gpt-4o-mini-2024-07-18", Decimal("0.0500")),
        Charge(NEXT, "gpt-4o-mini-2024-07-18", Decimal("0.31")),
        Charge(NEXT, "o3", Decimal("1.5")),
        Charge(DAY, None, Decimal("0.25"), "web search tool calls"),
        Charge(DAY, "gpt-4o", None, "gpt-4o, input", "charged in eur, not USD: 3"),
    ]
    result = compare("openai", None, None, entries, charges)
    assert result.rows == (
        Row(DAY, "gpt-4o-mini", Decimal("0.15"), Decimal("0.1499"), 2, 0),
        Row(NEXT, "gpt-4o-mini", Decimal("0.3"), Decimal("0.31"), 1, 0),
    )
    assert [row.drift_usd for row in result.rows] == [Decimal("0.0001"), Decimal("-0.01")]
    assert result.drift_usd == Decimal("-0.0099")
    assert [(u.side, u.day, u.model, u.usd, u.detail) for u in result.unmatched] == [
        ("ledger", DAY, "gpt-4.1", Decimal("2"), "1 booking: the provider reports no charge"),
        ("provider", DAY, "gpt-4o, input", None, "charged in eur, not USD: 3"),
        ("provider", DAY, "web search tool calls", Decimal("0.25"), "a charge that belongs to no model"),
        ("provider", NEXT, "o3", Decimal("1.5"), "no booking in the ledger"),
    ]


def test_unknown_and_partial_money_is_counted_never_summed_as_if_known() -> None:
    entries = [
        entry("0.10"),
        entry("0.02", resolution=Resolution.PARTIAL),
        entry(None),
        entry(None, resolution=Resolution.UNPRICED),
        entry(None, model="o3"),
    ]
    result = compare("openai", None, None, entries, [Charge(DAY, "gpt-4o-mini", Decimal("0.20"))])
    (row,) = result.rows
    # The known money (a PARTIAL lower bound included); three bookings are not known exactly.
    assert (row.ledger_usd, row.ledger_bookings, row.ledger_unknown, row.exact) == (Decimal("0.12"), 4, 3, False)
    assert row.drift_usd == Decimal("-0.08") and not result.exact
    (alone,) = result.unmatched
    assert alone.usd is None and alone.detail == "1 booking (1 not known exactly): the provider reports no charge"


def test_a_booking_set_aside_is_unmatched_with_its_reason_and_a_booking_may_be_compared_under_another_day() -> None:
    entries = [entry("0.1"), entry("0.2", day=NEXT), entry("0.4")]
    charges = [Charge(DAY, "gpt-4o-mini", Decimal("0.3"))]
    result = compare("openrouter", None, None, entries, charges, {2: "no generation id to look up"}, {1: DAY})
    assert result.rows == (Row(DAY, "gpt-4o-mini", Decimal("0.3"), Decimal("0.3"), 2, 0),)
    assert [(u.side, u.usd, u.detail) for u in result.unmatched] == [
        ("ledger", Decimal("0.4"), "1 booking: no generation id to look up")
    ]


def test_sums_are_exact_however_many_digits_the_provider_sends() -> None:
    charges = [
        Charge(DAY, "gpt-4o-mini", Decimal("0.000004500000000000000000000000000000000")),
        Charge(DAY, "gpt-4o-mini", Decimal("0.00003420000000000000000000000000000001")),
        Charge(DAY, "gpt-4o-mini", Decimal("0E-6176")),
    ]
    (row,) = compare("openai", None, None, [entry("0.0000387")], charges).rows
    assert row.provider_usd == Decimal("0.00003870000000000000000000000000000001")
    assert row.drift_usd == Decimal("-1E-38")
    assert row.to_dict()["drift_usd"] == "-0.00000000000000000000000000000000000001"


# -- the plain-data form --------------------------------------------------------------------------


def test_a_reconciliation_becomes_the_agreed_json_shape_and_comes_back_whole() -> None:
    since = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
    result = Reconciliation(
        "openai",
        since,
        None,
        [Row(DAY, "gpt-4o-mini", Decimal("1.23"), Decimal("1.20"), 12, 1)],
        [
            Unmatched("provider", DAY, "web search tool calls", Decimal("0.5"), "a charge"),
            Unmatched("ledger", DAY, "o3", None, "x"),
        ],
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data == {
        "provider": "openai",
        "since": "2026-11-01T00:00:00+00:00",
        "until": None,
        "drift_usd": "0.03",
        "rows": [
            {
                "day": "2026-11-01",
                "model": "gpt-4o-mini",
                "ledger_usd": "1.23",
                "provider_usd": "1.2",
                "drift_usd": "0.03",
                "ledger_bookings": 12,
                "ledger_unknown": 1,
            }
        ],
        "unmatched": [
            {
                "side": "provider",
                "day": "2026-11-01",
                "model": "web search tool calls",
                "usd": "0.5",
                "detail": "a charge",
            },
            {"side": "ledger", "day": "2026-11-01", "model": "o3", "usd": None, "detail": "x"},
        ],
    }
    assert Reconciliation.from_dict(data) == result
    assert minillm.Reconciliation.from_dict(data).drift_usd == Decimal("0.03")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drift_usd": "0.04"}, "says its drift is 0.04, but its figures make it 0$"),
        ({"rows": [{"day": "2026-11-01"}]}, "'model' is a string"),
        ({"rows": "none"}, "'rows' is a list"),
        ({"unmatched": [{"side": "both"}]}, "side is 'ledger' or 'provider'"),
        ({"since": "yesterday"}, "since must be a date"),
    ],
)
def test_plain_data_of_another_shape_is_refused_clearly(change: Dict[str, Any], message: str) -> None:
    data: Dict[str, Any] = {"provider": "openai", "since": None, "until": None, "drift_usd": "0"}
    data.update(rows=[], unmatched=[])
    with pytest.raises(minillm.InvalidArgumentError, match=message):
        Reconciliation.from_dict({**data, **change})


def test_money_in_a_row_must_be_a_decimal_string() -> None:
    row = Row(DAY, "m", Decimal("1"), Decimal("1"), 1).to_dict()
    with pytest.raises(minillm.InvalidArgumentError, match=r"'ledger_usd' is money as a decimal string, not 1\.5"):
        Row.from_dict({**row, "ledger_usd": 1.5})


def test_the_tolerance_applies_to_each_row_and_to_the_whole() -> None:
    rows = [Row(DAY, "a", Decimal("1.02"), Decimal("1"), 1), Row(DAY, "b", Decimal("1"), Decimal("1.02"), 1)]
    result = Reconciliation("openai", None, None, rows)
    assert result.drift_usd == 0  # opposite drifts cancel in all ...
    assert result.exceeds(Decimal("0.01")) and not result.exceeds(Decimal("0.02"))  # ... but not per row


# -- OpenAI's organization costs ------------------------------------------------------------------


def test_openai_costs_are_fetched_by_day_and_line_item_page_by_page_and_matched(account: CostServer) -> None:
    ledger = minillm.Ledger()
    today, _, _ = book(ledger, cost("0.0123"), cost("0.5", model="gpt-4.1"), cost("9", provider="anthropic"))
    earlier = today - datetime.timedelta(days=3)
    account.openai_cost(today, "gpt-4o-mini-2024-07-18, input", "0.0023", as_text=True)
    account.openai_cost(today, "gpt-4o-mini-2024-07-18, output", Decimal("0.0100000000000000000000000000"))
    account.openai_cost(today, "gpt-4.1-2025-04-14, input", "0.45")
    account.openai_cost(today, "web search tool calls", "0.025")
    account.openai_cost(earlier, "o3-2025-04-16, input", "1.5")

    result = minillm.reconcile(ledger, "openai", admin_key=KEY, since=earlier, base_url=account.url + "/v1")

    assert [(r.model, r.ledger_usd, r.provider_usd, r.drift_usd) for r in result.rows] == [
        ("gpt-4.1", Decimal("0.5"), Decimal("0.45"), Decimal("0.05")),
        ("gpt-4o-mini", Decimal("0.0123"), Decimal("0.0123"), Decimal("0")),
    ]  # the Anthropic booking is not OpenAI's
    assert result.drift_usd == Decimal("0.05") and result.exceeds(Decimal("0.01"))
    assert [(u.day, u.model, u.usd) for u in result.unmatched] == [
        (earlier, "o3", Decimal("1.5")),
        (today, "web search tool calls", Decimal("0.025")),
    ]
    midnight = datetime.datetime(earlier.year, earlier.month, earlier.day, tzinfo=datetime.timezone.utc)
    assert (result.since, result.until) == (midnight, midnight + datetime.timedelta(days=4))
    requests = account.requests_to("/v1/organization/costs")
    assert len(requests) == 2  # four days, two buckets a page
    first, second = requests
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.query["start_time"] == [str(int(midnight.timestamp()))]
    assert first.query["end_time"] == [str(int(midnight.timestamp()) + 4 * 86400)]
    assert first.query["bucket_width"] == ["1d"] and first.query["group_by[]"] == ["line_item"]
    assert "page" not in first.query and second.query["page"] != []


def test_a_wrong_admin_key_is_an_authentication_error_that_never_shows_it(account: CostServer) -> None:
    wrong = "sk-admin-WRONGwrongWRONGwrong42"
    with pytest.raises(minillm.AuthenticationError) as caught:
        minillm.reconcile(minillm.Ledger(), "openai", admin_key=wrong, base_url=account.url + "/v1")
    error = caught.value
    shown = " ".join([str(error), repr(error), json.dumps(error.body), repr(error.__cause__), repr(error.__context__)])
    assert caught.value.status_code == 401 and "Incorrect API key provided: ***" in str(error)
    assert wrong not in shown and "WRONGwrong" not in shown


def test_a_server_error_is_retried_and_one_that_persists_is_raised(account: CostServer, sleeps: SleepRecorder) -> None:
    retry = minillm.RetryPolicy(max_attempts=2, sleep=sleeps)
    busy = Reply.json({"error": {"message": "overloaded", "type": "server_error"}}, status=503)
    account.reply(busy, path="/v1/organization/costs")
    result = minillm.reconcile(minillm.Ledger(), "openai", admin_key=KEY, base_url=account.url + "/v1", retry=retry)
    assert result.rows == () and len(sleeps.calls) == 1
    account.reply(busy, busy, path="/v1/organization/costs")
    with pytest.raises(minillm.ServerError, match="overloaded"):
        minillm.reconcile(minillm.Ledger(), "openai", admin_key=KEY, base_url=account.url + "/v1", retry=retry)


def test_a_report_that_is_not_of_its_shape_is_a_malformed_response(account: CostServer) -> None:
    account.reply(Reply.json({"object": "page", "data": [{"results": []}]}), path="/v1/organization/costs")
    with pytest.raises(minillm.MalformedResponseError, match="without a start_time"):
        minillm.reconcile(minillm.Ledger(), "openai", admin_key=KEY, base_url=account.url + "/v1")
    looping = Reply.json({"object": "page", "data": [], "has_more": True, "next_page": "p1"})
    account.reply(looping, looping, path="/v1/organization/costs")
    with pytest.raises(minillm.MalformedResponseError, match="cursor that repeats"):
        minillm.reconcile(minillm.Ledger(), "openai", admin_key=KEY, base_url=account.url + "/v1")


def test_the_admin_key_and_base_url_come_from_the_environment(
    account: CostServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # an ordinary key is never used for the account
    with pytest.raises(minillm.ConfigurationError, match="set OPENAI_ADMIN_KEY"):
        minillm.reconcile(minillm.Ledger(), "openai", base_url=account.url + "/v1")
    monkeypatch.setenv("OPENAI_ADMIN_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", account.url + "/v1")
    minillm.reconcile(minillm.Ledger(), "openai")
    assert len(account.requests_to("/v1/organization/costs")) == 1


def test_bad_arguments_are_refused_before_anything_is_sent(account: CostServer) -> None:
    with pytest.raises(minillm.InvalidArgumentError, match="choose one of anthropic, openai, openrouter"):
        minillm.reconcile(minillm.Ledger(), "gemini", admin_key=KEY)
    with pytest.raises(minillm.InvalidArgumentError, match="lists its bookings"):
        minillm.reconcile({}, "openai", admin_key=KEY)
    with pytest.raises(minillm.InvalidArgumentError, match=r"since \(2026-11-02\) must be before until \(2026-11-02"):
        minillm.reconcile(minillm.Ledger(), "openai", admin_key=KEY, since="2026-11-02", until="2026-11-02")
    assert account.requests == []


def test_whole_days_are_compared(account: CostServer) -> None:
    result = minillm.reconcile(
        minillm.Ledger(), "openai", admin_key=KEY, base_url=account.url + "/v1",
        since="2026-11-01T15:00:00Z", until="2026-11-02T01:00:00+00:00",
    )  # fmt: skip
    assert (result.since, result.until) == (at(DAY, 0), at(DAY, 0) + datetime.timedelta(days=2))


# -- Anthropic's cost report ----------------------------------------------------------------------


def test_anthropic_cents_become_dollars_and_dated_models_meet_their_aliases(account: CostServer) -> None:
    ledger = minillm.Ledger()
    today, _ = book(
        ledger,
        cost("1.2378912", model="claude-sonnet-4-0", provider="anthropic"),
        cost("0.004", model="claude-haiku-4-5", provider="anthropic"),
    )
    account.anthropic_cost(today, "claude-sonnet-4-20250514", "1.0000000")
    account.anthropic_cost(today, "claude-sonnet-4-20250514", "0.2378912", token_type="output_tokens")
    account.anthropic_cost(today, "claude-haiku-4-5-20251001", "0.0041")
    account.anthropic_cost(today, None, "0.01", cost_type="web_search", description="Web Search Usage")

    result = minillm.reconcile(ledger, "anthropic", admin_key=KEY, base_url=account.url)

    assert [(r.model, r.ledger_usd, r.provider_usd, r.drift_usd) for r in result.rows] == [
        ("claude-haiku-4-5", Decimal("0.004"), Decimal("0.0041"), Decimal("-0.0001")),
        ("claude-sonnet-4", Decimal("1.2378912"), Decimal("1.2378912"), Decimal("0")),
    ]
    assert [(u.model, u.usd) for u in result.unmatched] == [("Web Search Usage", Decimal("0.01"))]
    (request,) = account.requests_to("/v1/organizations/cost_report")
    assert request.headers["x-api-key"] == KEY and request.headers["anthropic-version"]
    assert request.query["group_by[]"] == ["description"] and request.query["bucket_width"] == ["1d"]
    assert request.query["starting_at"] == [f"{today.isoformat()}T00:00:00Z"]


def test_an_anthropic_report_is_read_page_by_page(account: CostServer) -> None:
    start = datetime.date(2026, 10, 1)
    for n in range(5):
        account.anthropic_cost(start + datetime.timedelta(days=n), "claude-haiku-4-5-20251001", f"0.0{n}")
    result = minillm.reconcile(
        minillm.Ledger(), "anthropic", admin_key=KEY, base_url=account.url, since=start, until="2026-10-06"
    )
    assert [(u.day.day, u.usd) for u in result.unmatched] == [(n + 1, Decimal(f"0.0{n}")) for n in range(5)]
    assert len(account.requests_to("/v1/organizations/cost_report")) == 3


def test_a_missing_anthropic_admin_key_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_ADMIN_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with pytest.raises(minillm.ConfigurationError, match="set ANTHROPIC_ADMIN_KEY"):
        minillm.reconcile(minillm.Ledger(), "anthropic")


# -- OpenRouter's generations ---------------------------------------------------------------------


def test_openrouter_bookings_are_looked_up_by_generation_once_each(account: CostServer) -> None:
    ledger = minillm.Ledger()
    model = "anthropic/claude-haiku-4.5"
    book(
        ledger,
        cost("0.010", model=model, provider="openrouter", response_id="gen-1"),
        cost("0.002", model=model, provider="openrouter", response_id="gen-1"),  # a correction of the first
        cost("0.5", model=model, provider="openrouter", response_id="gen-2", byok=True),
        cost(None, model=model, provider="openrouter", response_id="gen-gone"),
        cost("0.1", model=model, provider="openrouter"),
    )
    account.generation("gen-1", model, "0.012")
    account.generation("gen-2", model, "0.02", byok=True, upstream="0.49")

    result = minillm.reconcile(ledger, "openrouter", admin_key=KEY, base_url=account.url + "/api/v1")

    (row,) = result.rows
    assert (row.model, row.ledger_usd, row.provider_usd, row.ledger_bookings) == (
        model,
        Decimal("0.512"),
        Decimal("0.522"),
        3,
    )
    assert row.drift_usd == Decimal("-0.01")
    assert sorted((u.usd, u.detail) for u in result.unmatched if u.usd is not None) == [
        (Decimal("0.1"), "1 booking: no generation id to look up")
    ]
    assert [u.detail for u in result.unmatched if u.usd is None] == [
        "1 booking (1 not known exactly): OpenRouter has no record of generation gen-gone"
    ]
    looked_up = [r.query["id"] for r in account.requests_to("/generation")]
    assert sorted(looked_up) == [["gen-1"], ["gen-2"], ["gen-gone"]]
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in account.requests_to("/generation"))


def test_a_real_client_s_openrouter_bookings_reconcile_exactly_with_the_invoice() -> None:
    with BillingServer() as server:
        invoice = server.bill(Billing("openrouter", "0.1", "1.23456789"))
        server.plan(Plan(prompt_tokens=3, tokens=7), Plan(prompt_tokens=30, tokens=2))
        ledger = minillm.Ledger()
        client = minillm.Client("openrouter/vendor/model", api_key="k", base_url=server.url, on_cost=ledger)
        client.complete("one")
        with client.stream("two") as stream:
            stream.collect()
        client.close()
        assert invoice.wait_final(5, count=2)
        result = minillm.reconcile(ledger, "openrouter", admin_key="k", base_url=server.url)
    (row,) = result.rows
    assert row.ledger_bookings == 2 and row.provider_usd == invoice.total() == row.ledger_usd
    assert result.drift_usd == 0 and result.unmatched == ()


def test_an_openrouter_key_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with pytest.raises(minillm.ConfigurationError, match="set OPENROUTER_API_KEY"):
        minillm.reconcile(minillm.Ledger(), "openrouter")


def test_a_corrected_booking_is_one_attempt_with_known_money(account: CostServer) -> None:
    ledger = minillm.Ledger()
    ledger.record(cost(None, booking_id="b-1", response_id="gen-9"), {})
    ledger.record(cost("0.3", booking_id="b-1:correction", corrects="b-1", source="lookup"), {})
    account.openai_cost(ledger.entries()[0].booked_at.date(), "gpt-4o-mini-2024-07-18, input", "0.3")

    result = minillm.reconcile(ledger, "openai", admin_key=KEY, base_url=account.url + "/v1")

    (row,) = result.rows
    assert (row.ledger_usd, row.ledger_bookings, row.ledger_unknown) == (Decimal("0.3"), 1, 0)
    assert row.drift_usd == 0 and result.unmatched == ()
