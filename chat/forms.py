"""Console forms. Views validate with them and hand the cleaned data to one service."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from chat.models import FaqEntry, Site


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
