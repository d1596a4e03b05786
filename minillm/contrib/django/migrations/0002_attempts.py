"""Every attempt is booked: whether it failed, its number, where its money came from."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("minillm", "0001_initial")]

    operations = [
        migrations.AddField(model_name="costrecord", name="failed", field=models.BooleanField(default=False)),
        migrations.AddField(model_name="costrecord", name="attempt", field=models.PositiveIntegerField(default=1)),
        migrations.AddField(
            model_name="costrecord", name="source", field=models.CharField(blank=True, max_length=16, null=True)
        ),
    ]
