"""Corrections: the booking id of the pending booking a booking corrects."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("minillm", "0003_cache_writes_and_tiers")]

    operations = [
        migrations.AddField(
            model_name="costrecord",
            name="corrects",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
    ]
