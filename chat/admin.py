"""The Django admin: sites, people, the knowledge base (with file import/export) and transcripts.

Knowledge-base edits enqueue a reindex after commit from the admin's save/delete hooks (not
from signals), so saving never waits for the index to build.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, Model, QuerySet
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from chat import access
from chat.knowledge.entries import article_knowledge_entries
from chat.knowledge.formats import KbFormat
from chat.models import (
    Agent,
    Article,
    Attachment,
    AuditLog,
    CannedReply,
    Conversation,
    CsatRating,
    Delivery,
    FaqEntry,
    Label,
    Message,
    Site,
    SiteApiKey,
    Team,
    Visitor,
)
from chat.services import privacy
from chat.services.attachments import attachment_files_delete
from chat.services.knowledge import (
    ImportReport,
    decode_upload,
    knowledge_export,
    knowledge_import,
    knowledge_reindex_after_commit,
    site_faq_entries,
)
from chat.services.proactive import site_api_key_create


class TeamInline(admin.TabularInline):
    model = Team
    extra = 0


def download(content: str, fmt: KbFormat, stem: str) -> HttpResponse:
    response = HttpResponse(content, content_type=fmt.content_type)
    response["Content-Disposition"] = f'attachment; filename="{stem}.{fmt.value}"'
    return response


class SiteApiKeyInline(admin.TabularInline):
    """Keys are created by the site list's actions; here they can only be seen or revoked."""

    model = SiteApiKey
    extra = 0
    fields = ["prefix", "name", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    can_delete = True

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["name", "key", "language", "bot_enabled", "bot_threshold", "created_at"]
    search_fields = ["name", "key", "allowed_origins"]
    readonly_fields = ["created_at"]
    inlines = [TeamInline, SiteApiKeyInline]
    change_form_template = "admin/chat/site/change_form.html"
    actions = ["create_api_key", "rotate_api_keys"]

    @admin.action(description="Create an API key (shown once)")
    def create_api_key(self, request: HttpRequest, queryset: QuerySet[Site]) -> None:
        self._new_keys(request, queryset, rotate=False)

    @admin.action(description="Rotate API keys: revoke the old ones, create one (shown once)")
    def rotate_api_keys(self, request: HttpRequest, queryset: QuerySet[Site]) -> None:
        self._new_keys(request, queryset, rotate=True)

    def _new_keys(self, request: HttpRequest, queryset: QuerySet[Site], *, rotate: bool) -> None:
        for site in queryset:
            _key, secret = site_api_key_create(
                site=site, name=f"admin {request.user}", rotate=rotate
            )
            self.message_user(
                request,
                f"New API key for {site.name} (copy it now; it is not stored): {secret}",
                messages.WARNING,
            )

    def get_urls(self) -> list[URLPattern]:
        export = path(
            "<int:site_id>/export-kb/<str:fmt>/",
            self.admin_site.admin_view(self.export_view),
            name="chat_site_export_kb",
        )
        return [export, *super().get_urls()]

    def export_view(self, request: HttpRequest, site_id: int, fmt: str) -> HttpResponse:
        """The site's whole FAQ as a file, like ``manage.py export_kb``."""
        site = Site.objects.filter(pk=site_id).first()
        kb_format = KbFormat.for_filename(f".{fmt}")
        if site is None or kb_format is None:
            raise Http404
        if not self.has_view_permission(request, site):
            raise PermissionDenied
        content = knowledge_export(entries=site_faq_entries(site), fmt=kb_format)
        return download(content, kb_format, f"{site.key}-faq")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = {"kb_formats": list(KbFormat), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra)


@admin.register(CsatRating)
class CsatRatingAdmin(admin.ModelAdmin):
    """Read-only: ratings are the customers' words, attributed as they were at close."""

    list_display = ["conversation", "site", "score", "agent_name", "team_name", "resolved_by"]
    list_filter = ["site", "score", "resolved_by"]
    search_fields = ["comment", "agent_name", "team_name"]
    date_hierarchy = "requested_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


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
    list_display = ["display_name", "user", "team_names", "status", "capacity", "is_supervisor"]
    list_filter = ["teams__site", "teams"]
    search_fields = ["display_name", "user__username", "user__email"]
    filter_horizontal = ["teams"]
    autocomplete_fields = ["user"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        return super().get_queryset(request).select_related("user").prefetch_related("teams")

    @admin.display(description="teams")
    def team_names(self, agent: Agent) -> str:
        return ", ".join(team.name for team in agent.teams.all())


class ReindexOnChange(admin.ModelAdmin):
    """Enqueue the site's reindex after commit whenever the admin changes a row of it."""

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        previous_site = form.initial.get("site") if change else None
        for site_id in {obj.site_id, previous_site} - {None}:
            knowledge_reindex_after_commit(site_id=int(site_id))

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        if formsets:  # inlines may change what the index sees
            knowledge_reindex_after_commit(site_id=form.instance.site_id)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        site_id = obj.site_id
        super().delete_model(request, obj)
        knowledge_reindex_after_commit(site_id=site_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        site_ids = set(queryset.values_list("site_id", flat=True))
        super().delete_queryset(request, queryset)
        for site_id in site_ids:
            knowledge_reindex_after_commit(site_id=site_id)


class KnowledgeImportForm(forms.Form):
    site = forms.ModelChoiceField(queryset=Site.objects.all())
    file = forms.FileField(
        help_text="CSV, JSON or Markdown, UTF-8; see the README for the columns."
    )
    format = forms.ChoiceField(
        choices=[("", "From the file name"), *((f.value, f.name.title()) for f in KbFormat)],
        required=False,
    )
    replace = forms.BooleanField(
        required=False,
        help_text="Delete the site's entries the file does not contain (only if no row is bad).",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload is None:
            return data
        fmt = data.get("format") or KbFormat.for_filename(upload.name or "")
        if not fmt:
            raise forms.ValidationError("Choose the format: the file name does not say it.")
        try:
            data["text"] = decode_upload(upload.read())
        except ValueError as problem:
            raise forms.ValidationError(f"Cannot read the file: {problem}.") from None
        data["format"] = KbFormat(fmt)
        return data


@admin.register(FaqEntry)
class FaqEntryAdmin(ReindexOnChange):
    list_display = ["question", "site", "language", "tags", "enabled", "updated_at"]
    list_filter = ["site", "language", "enabled"]
    list_editable = ["enabled"]
    search_fields = ["question", "phrasings", "answer", "tags"]
    change_list_template = "admin/chat/faqentry/change_list.html"
    actions = ["export_csv", "export_json", "export_markdown"]

    @admin.action(description="Export selected entries as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[FaqEntry]) -> HttpResponse:
        return self._export(queryset, KbFormat.CSV)

    @admin.action(description="Export selected entries as JSON")
    def export_json(self, request: HttpRequest, queryset: QuerySet[FaqEntry]) -> HttpResponse:
        return self._export(queryset, KbFormat.JSON)

    @admin.action(description="Export selected entries as Markdown")
    def export_markdown(self, request: HttpRequest, queryset: QuerySet[FaqEntry]) -> HttpResponse:
        return self._export(queryset, KbFormat.MARKDOWN)

    def _export(self, queryset: QuerySet[FaqEntry], fmt: KbFormat) -> HttpResponse:
        content = knowledge_export(entries=queryset.order_by("pk"), fmt=fmt)
        return download(content, fmt, "faq-entries")

    def get_urls(self) -> list[URLPattern]:
        upload = path(
            "import/",
            self.admin_site.admin_view(self.import_view),
            name="chat_faqentry_import",
        )
        return [upload, *super().get_urls()]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload a file into one site's FAQ; the report lists every rejected row by line."""
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        report: ImportReport | None = None
        if request.method != "POST":
            form = KnowledgeImportForm(initial={"site": request.GET.get("site")})
        else:
            form = KnowledgeImportForm(request.POST, request.FILES)
            if form.is_valid():
                report = self._import(request, form.cleaned_data)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import FAQ entries",
            "form": form,
            "report": report,
            "changelist_url": reverse("admin:chat_faqentry_changelist"),
        }
        return TemplateResponse(request, "admin/chat/faqentry/import.html", context)

    def _import(self, request: HttpRequest, data: dict[str, Any]) -> ImportReport:
        if data["replace"] and not self.has_delete_permission(request):
            raise PermissionDenied
        report = knowledge_import(
            site=data["site"], text=data["text"], fmt=data["format"], replace=data["replace"]
        )
        level = messages.WARNING if report.errors else messages.SUCCESS
        self.message_user(request, f"{data['site']}: {report.summary()}", level)
        return report


@admin.register(Article)
class ArticleAdmin(ReindexOnChange):
    list_display = ["title", "site", "language", "tags", "enabled", "updated_at"]
    list_filter = ["site", "language", "enabled"]
    search_fields = ["title", "body", "tags"]
    readonly_fields = ["passages"]

    @admin.display(description="passages the bot retrieves")
    def passages(self, article: Model) -> str:
        if not isinstance(article, Article) or article.pk is None:
            return "Shown after saving."
        entries = article_knowledge_entries(article)
        return (
            format_html_join(
                "",
                "<p><strong>{}</strong> ({} chars)<br>{}</p>",
                ((e.question, len(e.answer), e.answer[:160]) for e in entries),
            )
            or "None: the body is empty."
        )


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["name", "site", "color"]
    list_filter = ["site"]
    search_fields = ["name"]


@admin.register(CannedReply)
class CannedReplyAdmin(admin.ModelAdmin):
    """Variables in the text: {name}, {email}, {agent}, {site} (or {{ customer.name }} …)."""

    list_display = ["__str__", "title", "site"]
    list_filter = ["site"]
    search_fields = ["shortcut", "title", "body"]


@admin.register(Visitor)
class VisitorAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "site",
        "email",
        "external_id",
        "language",
        "created_at",
        "last_seen_at",
        "erased_at",
    ]
    list_filter = ["site"]
    search_fields = ["name", "email", "public_id", "external_id"]
    readonly_fields = ["public_id", "external_id", "created_at", "last_seen_at", "erased_at"]
    actions = ["export_data", "erase_data"]

    @admin.action(description=_("Export selected customers' data (JSON)"))
    def export_data(self, request: HttpRequest, queryset: QuerySet[Visitor]) -> HttpResponse:
        visitors = queryset & access.visitors_for_user(request.user)
        exports = [
            privacy.visitor_export(visitor=v, by=request.user, via="admin")
            for v in visitors.select_related("site").order_by("pk")
        ]
        body = exports[0] if len(exports) == 1 else exports
        response = HttpResponse(
            json.dumps(body, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2),
            content_type="application/json",
        )
        response["Content-Disposition"] = 'attachment; filename="customers.json"'
        return response

    @admin.action(description=_("Erase selected customers' data"))
    def erase_data(self, request: HttpRequest, queryset: QuerySet[Visitor]) -> HttpResponse | None:
        visitors = list((queryset & access.visitors_for_user(request.user)).select_related("site"))
        if request.POST.get("confirm") != "yes":
            return TemplateResponse(
                request,
                "admin/chat/visitor/erase_confirmation.html",
                {
                    **self.admin_site.each_context(request),
                    "title": _("Erase customers' data?"),
                    "visitors": visitors,
                    "opts": self.model._meta,
                    "action": "erase_data",
                },
            )
        for visitor in visitors:
            privacy.visitor_erase(visitor=visitor, by=request.user, via="admin")
        self.message_user(
            request,
            _("Erased the data of %(n)d customers.") % {"n": len(visitors)},
            messages.SUCCESS,
        )
        return None


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ["at", "actor_name", "action", "via", "site", "visitor_ref", "detail"]
    list_filter = ["action", "via", "site"]
    search_fields = ["actor_name", "visitor_ref"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["seq", "author", "agent", "body", "meta", "helpful", "created_at"]
    readonly_fields = ["seq", "author", "agent", "body", "meta", "helpful", "created_at"]
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
    list_filter = ["status", "site", "team", "labels", "handoff_reason"]
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
    filter_horizontal = ["labels"]
    inlines = [MessageInline]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    # Rows of attachments go with their conversation; their stored files go here, after commit.
    def delete_model(self, request: HttpRequest, obj: Conversation) -> None:
        attachment_files_delete(attachments=Attachment.objects.filter(conversation=obj))
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        attachment_files_delete(attachments=Attachment.objects.filter(conversation__in=queryset))
        super().delete_queryset(request, queryset)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Every push and e-mail we tried to send, and how it went (read only)."""

    list_display = ["created_at", "channel", "kind", "status", "attempts", "recipient", "error"]
    list_filter = ["channel", "kind", "status"]
    search_fields = ["recipient", "error"]
    readonly_fields = [f.name for f in Delivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
