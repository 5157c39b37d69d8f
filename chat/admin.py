from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from chat.models import Agent, Conversation, FaqEntry, Message, Site, Team, Visitor


class TeamInline(admin.TabularInline):
    model = Team
    extra = 0


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["name", "key", "language", "bot_enabled", "bot_threshold", "created_at"]
    search_fields = ["name", "key", "allowed_origins"]
    readonly_fields = ["created_at"]
    inlines = [TeamInline]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "site", "agent_count"]
    list_filter = ["site"]
    search_fields = ["name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return super().get_queryset(request).annotate(agent_total=Count("agents"))

    @admin.display(description="agents", ordering="agent_total")
    def agent_count(self, team: Team) -> int:
        return team.agent_total  # type: ignore[attr-defined]


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["display_name", "user", "team_names"]
    list_filter = ["teams__site", "teams"]
    search_fields = ["display_name", "user__username", "user__email"]
    filter_horizontal = ["teams"]
    autocomplete_fields = ["user"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        return super().get_queryset(request).select_related("user").prefetch_related("teams")

    @admin.display(description="teams")
    def team_names(self, agent: Agent) -> str:
        return ", ".join(team.name for team in agent.teams.all())


@admin.register(FaqEntry)
class FaqEntryAdmin(admin.ModelAdmin):
    list_display = ["question", "site", "language", "tags", "enabled", "updated_at"]
    list_filter = ["site", "language", "enabled"]
    list_editable = ["enabled"]
    search_fields = ["question", "phrasings", "answer", "tags"]


@admin.register(Visitor)
class VisitorAdmin(admin.ModelAdmin):
    list_display = ["__str__", "site", "email", "language", "created_at", "last_seen_at"]
    list_filter = ["site"]
    search_fields = ["name", "email", "public_id"]
    readonly_fields = ["public_id", "created_at", "last_seen_at"]


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["seq", "author", "agent", "body", "meta", "helpful", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["seq"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "visitor",
        "site",
        "status",
        "assignee",
        "team",
        "handoff_reason",
        "created_at",
    ]
    list_filter = ["status", "site", "team", "handoff_reason"]
    search_fields = ["id", "visitor__name", "visitor__email", "messages__body"]
    list_select_related = ["visitor", "site", "assignee", "team"]
    readonly_fields = [
        "site",
        "visitor",
        "status",
        "assignee",
        "team",
        "handoff_reason",
        "last_seq",
        "page_url",
        "created_at",
        "queued_at",
        "assigned_at",
        "closed_at",
    ]
    inlines = [MessageInline]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
