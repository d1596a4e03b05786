"""The cost records table (as Django's makemigrations wrote it)."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="CostRecord",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("booking_id", models.CharField(max_length=64, unique=True)),
                ("booked_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ("usd", models.DecimalField(blank=True, decimal_places=15, max_digits=30, null=True)),
                ("resolution", models.CharField(max_length=16)),
                ("prompt_tokens", models.BigIntegerField(default=0)),
                ("completion_tokens", models.BigIntegerField(default=0)),
                ("total_tokens", models.BigIntegerField(default=0)),
                ("cached_tokens", models.BigIntegerField(default=0)),
                ("reasoning_tokens", models.BigIntegerField(default=0)),
                ("model", models.CharField(max_length=255)),
                ("provider", models.CharField(max_length=64)),
                ("response_id", models.CharField(blank=True, max_length=255, null=True)),
                ("byok", models.BooleanField(default=False)),
                ("cancelled", models.BooleanField(default=False)),
                ("meta", models.JSONField(blank=True, default=dict)),
            ],
            options={
                "verbose_name": "cost record",
                "ordering": ("id",),
            },
        ),
    ]
