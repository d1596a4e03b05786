"""The Django app of minillm's cost records."""

from __future__ import annotations

from django.apps import AppConfig


class MiniLLMConfig(AppConfig):
    name = "minillm.contrib.django"
    label = "minillm"
    verbose_name = "minillm costs"
    default_auto_field = "django.db.models.BigAutoField"
