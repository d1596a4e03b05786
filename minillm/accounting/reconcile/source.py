"""What every provider's account offers a reconciliation: :class:`Source`,
which fetches the charges of a time range (or, for a provider that bills
per generation, the charges of the bookings themselves)."""

from __future__ import annotations

import abc
import datetime
from typing import Any, ClassVar, Dict, List, Sequence, Tuple

import attrs

from ...errors import MalformedResponseError
from ...routes import Route
from ...transports.base import HTTPRequest
from ..ledgers.base import Entry
from .matching import Charge

__all__ = ["Fetched", "Report", "Source", "malformed", "pages"]


@attrs.frozen
class Fetched:
    """A provider's side: its charges; the bookings (by their index among
    the entries) that could not be compared, each with why; and the day a
    booking is compared under when it is not the day it was booked."""

    charges: Tuple[Charge, ...] = ()
    set_aside: Dict[int, str] = attrs.field(factory=dict)
    days: Dict[int, datetime.date] = attrs.field(factory=dict)


class Source(abc.ABC):
    """One provider's account. Stateless: what a fetch needs is its route."""

    #: the provider whose bookings count (``CostInfo.provider``)
    provider: ClassVar[str]
    #: the environment variable the key is read from
    key_env: ClassVar[str]

    @abc.abstractmethod
    def fetch(
        self, route: Route, since: datetime.datetime, until: datetime.datetime, entries: Sequence[Entry]
    ) -> Fetched:
        """The provider's charges from ``since`` (a UTC midnight) to
        ``until`` (one too, exclusive), for the ledger's ``entries`` of it.

        :raises APIError: the provider refused (a wrong key is an
            :class:`~minillm.AuthenticationError`) or answered nonsense.
        :raises APIConnectionError: it could not be reached.
        """

    @staticmethod
    def get(route: Route, path_and_query: str) -> HTTPRequest:
        """A GET of ``path_and_query`` below the route's base URL, with the
        provider's key and version headers."""
        headers = route.adapter.headers(stream=False)
        headers.pop("Content-Type", None)  # a GET has no body
        return HTTPRequest(method="GET", url=route.adapter.url(path_and_query), headers=headers)


class Report(Source):
    """An account read as a report of daily buckets, page by page: each
    bucket ``{<start>, "results": [...]}`` of the page's ``"data"`` holds
    one result per charge. Subclasses say where it is and how a bucket's
    day and a result read."""

    #: the report's path below the route's base URL
    path: ClassVar[str]
    #: the query parameters of the window's start and end
    window: ClassVar[Tuple[str, str]]
    #: what the charges are grouped by (what names their model)
    group_by: ClassVar[str]
    #: the most buckets the provider gives a page
    page_buckets: ClassVar[int]

    @abc.abstractmethod
    def moment(self, instant: datetime.datetime) -> Any:
        """``instant`` as the report's query takes it."""

    def query(self, since: datetime.datetime, until: datetime.datetime) -> List[Tuple[str, Any]]:
        """The first page's query parameters: whole days, grouped."""
        start, end = self.window
        return [
            (start, self.moment(since)),
            (end, self.moment(until)),
            ("bucket_width", "1d"),
            ("group_by[]", self.group_by),
            ("limit", self.page_buckets),
        ]

    @abc.abstractmethod
    def bucket_day(self, route: Route, bucket: Dict[str, Any]) -> datetime.date:
        """The UTC day ``bucket`` covers.

        :raises MalformedResponseError: it says no day.
        """

    @abc.abstractmethod
    def charge(self, day: datetime.date, result: Dict[str, Any]) -> Charge:
        """The charge one result of ``day`` reports."""

    def fetch(
        self, route: Route, since: datetime.datetime, until: datetime.datetime, entries: Sequence[Entry]
    ) -> Fetched:
        from urllib.parse import urlencode

        charges: List[Charge] = []
        for page in pages(route, f"{self.path}?{urlencode(self.query(since, until))}"):
            charges.extend(self.charges_of(route, page))
        return Fetched(tuple(charges))

    def charges_of(self, route: Route, page: Dict[str, Any]) -> List[Charge]:
        """The charges of one page of the report.

        :raises MalformedResponseError: a page not of the report's shape.
        """
        buckets = page.get("data")
        if not isinstance(buckets, list):
            raise malformed(route, "a page of the report without a list of buckets ('data')")
        charges = []
        for bucket in buckets:
            if not isinstance(bucket, dict) or not isinstance(bucket.get("results"), list):
                raise malformed(route, "a bucket of the report without results")
            day = self.bucket_day(route, bucket)
            for result in bucket["results"]:
                if not isinstance(result, dict):
                    raise malformed(route, "a cost that is not a JSON object")
                charges.append(self.charge(day, result))
        return charges


def pages(route: Route, first: str, cursor_param: str = "page") -> List[Dict[str, Any]]:
    """Every page of a paginated report: ``first`` is the path and query of
    the first page, and each next page adds ``cursor_param=<next_page>``
    while the provider says ``has_more``.

    :raises MalformedResponseError: a page that is not an object, or a
        cursor that repeats (the listing would never end).
    """
    from urllib.parse import quote

    from .wire import get_json

    found: List[Dict[str, Any]] = []
    seen = {""}
    path = first
    while True:
        data = get_json(route, Source.get(route, path))
        if not isinstance(data, dict):
            raise malformed(route, "a page of the report that is not a JSON object")
        found.append(data)
        cursor = data.get("next_page")
        if not data.get("has_more") or not isinstance(cursor, str) or not cursor:
            return found
        if cursor in seen:
            raise malformed(route, f"a next_page cursor that repeats ({cursor!r})")
        seen.add(cursor)
        path = f"{first}&{cursor_param}={quote(cursor, safe='')}"


def malformed(route: Route, why: str) -> MalformedResponseError:
    """The error for a report the provider answered with, but that cannot be read."""
    return MalformedResponseError(
        f"{route.provider} answered with {why} ({route.base_url})", status_code=200, provider=route.provider
    )
