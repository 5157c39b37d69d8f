"""Create (or refresh) the demo site "Acme Shop" with its knowledge base, teams and people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from chat.models import Agent, FaqEntry, Site, Team
from chat.views import DEMO_SITE_KEY

FAQ_FILE = Path(__file__).resolve().parents[2] / "demo" / "acme_faq.json"
DEMO_PEOPLE = [
    # username, password, display name, superuser, teams
    ("admin", "admin", "Ada Admin", True, ["Support", "Sales"]),
    ("alice", "alice", "Alice", False, ["Support"]),
    ("bob", "bob", "Bob", False, ["Sales"]),
]


class Command(BaseCommand):
    help = "Load the Acme Shop demo: site, knowledge base, teams, an admin and two agents."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--origin", action="append", default=[], help="Extra allowed origin")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        site, _ = Site.objects.update_or_create(
            key=DEMO_SITE_KEY,
            defaults={
                "name": "Acme Shop",
                "greeting": (
                    "Hi! I'm Acme's assistant. Ask me about orders, shipping, returns or payment."
                ),
                "allowed_origins": "\n".join(options["origin"]),
            },
        )
        teams = {
            name: Team.objects.get_or_create(site=site, name=name)[0]
            for name in ["Sales", "Support"]
        }
        entries = json.loads(FAQ_FILE.read_text(encoding="utf-8"))
        for e in entries:
            # Keyed by question, so rerunning keeps ids (messages cite them) and admin edits
            # to other entries.
            FaqEntry.objects.update_or_create(
                site=site,
                question=e["question"],
                language=e["language"],
                defaults={
                    "phrasings": "\n".join(e["phrasings"]),
                    "answer": e["answer"],
                    "tags": ", ".join(e.get("tags", [])),
                },
            )
        User = get_user_model()
        for username, password, name, superuser, team_names in DEMO_PEOPLE:
            user, created = User.objects.get_or_create(
                username=username, defaults={"is_staff": superuser, "is_superuser": superuser}
            )
            if created:
                user.set_password(password)
                user.save()
            agent, _ = Agent.objects.get_or_create(user=user, defaults={"display_name": name})
            agent.teams.set([teams[t] for t in team_names])
        self.stdout.write(f"Demo site {site.name!r}: {len(entries)} FAQ entries, key {site.key}")
        for username, password, _, superuser, _ in DEMO_PEOPLE:
            role = "admin + agent" if superuser else "agent"
            self.stdout.write(f"  login {username} / {password} ({role})")
