"""What a booking was priced from beyond its tokens: cache writes and the served tier."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("minillm", "0002_attempts")]

    operations = [
        migrations.AddField(
            model_name="costrecord", name="cache_write_tokens", field=models.BigIntegerField(default=0)
        ),
        migrations.AddField(
            model_name="costrecord",
            name="service_tier",
            field=models.CharField(blank=True, max_length=32, null=True),
        ),
    ]
