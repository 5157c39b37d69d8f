from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

# The default before the bot's confidence was recalibrated. A site still at it never chose a
# threshold, so it follows the new default; a site that chose any other value keeps it.
OLD_DEFAULT = 0.45
NEW_DEFAULT = 0.55


def follow_new_default(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    apps.get_model("chat", "Site").objects.filter(bot_threshold=OLD_DEFAULT).update(
        bot_threshold=NEW_DEFAULT
    )


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0010_privacy"),
    ]

    operations = [
        migrations.AlterField(
            model_name="site",
            name="bot_threshold",
            field=models.FloatField(
                default=NEW_DEFAULT,
                help_text="The bot answers at or above this confidence (0–1) and hands off below it.",
                verbose_name="bot confidence threshold",
            ),
        ),
        migrations.RunPython(follow_new_default, migrations.RunPython.noop),
    ]
