"""The cost records: one row per booking, with every field of its
:class:`~minillm.CostInfo`, its ``meta`` and when it was booked."""

from __future__ import annotations

from typing import Any, Dict, Tuple

from django.db import models
from django.utils import timezone

from ...models import CostInfo, Resolution


class CostRecord(models.Model):
    """One booking. ``usd`` is NULL when the money is not known -- never 0 --
    and a lower bound when ``resolution`` is ``"partial"``."""

    booking_id = models.CharField(max_length=64, unique=True)
    booked_at = models.DateTimeField(default=timezone.now, db_index=True)
    usd = models.DecimalField(max_digits=30, decimal_places=15, null=True, blank=True)
    resolution = models.CharField(max_length=16)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    model = models.CharField(max_length=255)
    provider = models.CharField(max_length=64)
    response_id = models.CharField(max_length=255, null=True, blank=True)
    byok = models.BooleanField(default=False)
    cancelled = models.BooleanField(default=False)
    meta = models.JSONField(default=dict, blank=True)
    failed = models.BooleanField(default=False)
    attempt = models.PositiveIntegerField(default=1)
    source = models.CharField(max_length=16, null=True, blank=True)
    cache_write_tokens = models.BigIntegerField(default=0)
    service_tier = models.CharField(max_length=32, null=True, blank=True)
    #: the booking id of the booking this one corrects (see ``CostInfo.corrects``)
    corrects = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        app_label = "minillm"
        ordering = ("id",)
        verbose_name = "cost record"

    def as_booking(self) -> Tuple[CostInfo, Dict[str, Any]]:
        """The booking as minillm has it: ``(cost, meta)``."""
        cost = CostInfo(
            usd=None if self.usd is None else self.usd.normalize(),
            resolution=Resolution(self.resolution),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.total_tokens,
            cached_tokens=self.cached_tokens,
            reasoning_tokens=self.reasoning_tokens,
            model=self.model,
            provider=self.provider,
            response_id=self.response_id,
            byok=self.byok,
            cancelled=self.cancelled,
            failed=self.failed,
            attempt=self.attempt,
            source=self.source,
            cache_write_tokens=self.cache_write_tokens,
            service_tier=self.service_tier,
            booking_id=self.booking_id,
            corrects=self.corrects,
        )
        return cost, dict(self.meta or {})

    def __str__(self) -> str:
        usd = "unknown" if self.usd is None else f"${self.usd.normalize()}"
        return f"{self.provider}/{self.model} {usd} ({self.resolution})"
