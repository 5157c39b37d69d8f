"""Console forms. Views validate with them and hand the cleaned data to one service."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chat.models import Agent, FaqEntry, Site, Team


class ReviewEntryForm(forms.ModelForm):
    """A new FAQ entry drafted from a review group; ``items`` names the group's questions."""

    site = forms.ModelChoiceField(queryset=Site.objects.none(), widget=forms.HiddenInput)
    items = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = FaqEntry
        fields = ["question", "phrasings", "answer", "language", "tags"]
        widgets = {
            "phrasings": forms.Textarea(attrs={"rows": 4}),
            "answer": forms.Textarea(attrs={"rows": 5}),
        }

    def __init__(self, *args: Any, sites: QuerySet[Site], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites  # type: ignore[attr-defined]
        self.fields["answer"].widget.attrs["autofocus"] = True

    @property
    def refs(self) -> list[str]:
        return (self.cleaned_data.get("items") or "").split()


class ReportForm(forms.Form):
    """The reports page's filters; every choice is limited to what the reader may see."""

    MAX_DAYS = 366

    start = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput({"type": "date"})
    )
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput({"type": "date"}))
    site = forms.ModelChoiceField(Site.objects.none(), label=_("Site"), required=False)
    team = forms.ModelChoiceField(Team.objects.none(), label=_("Team"), required=False)
    agent = forms.ModelChoiceField(Agent.objects.none(), label=_("Agent"), required=False)
    by = forms.ChoiceField(
        label=_("Break down by"),
        required=False,
        choices=[("site", _("Site")), ("team", _("Team")), ("agent", _("Agent"))],
    )

    def __init__(
        self, *args: Any, sites: QuerySet[Site], teams: QuerySet[Team], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites  # type: ignore[attr-defined]
        self.fields["team"].queryset = teams  # type: ignore[attr-defined]
        self.fields["agent"].queryset = Agent.objects.filter(  # type: ignore[attr-defined]
            teams__in=teams
        ).distinct()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        today = timezone.localdate()
        end: date = data.get("end") or today
        start: date = data.get("start") or end - timedelta(days=29)
        if start > end:
            raise forms.ValidationError(_("The start date is after the end date."))
        if (end - start).days >= self.MAX_DAYS:
            raise forms.ValidationError(
                _("Reports cover at most %(n)d days.") % {"n": self.MAX_DAYS}
            )
        data["start"], data["end"] = start, end
        data["by"] = data.get("by") or "site"
        return data


class CsatForm(forms.Form):
    """A rating from the signed link: a score from 1 to 5 and an optional comment."""

    score = forms.TypedChoiceField(
        coerce=int, choices=[(n, str(n)) for n in range(1, 6)], widget=forms.RadioSelect
    )
    comment = forms.CharField(
        label=_("Anything you would like to add? (optional)"),
        required=False,
        max_length=1000,
        widget=forms.Textarea({"rows": 3}),
    )
