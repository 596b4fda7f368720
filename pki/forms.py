from __future__ import annotations

from typing import Any

from django import forms

from fleet.inventory.models import Organization
from pki.api.serializers import MAX_TOKEN_HOURS
from pki.models import RevocationReason


class _OrganizationForm(forms.Form):
    organization: forms.ModelChoiceField[Organization] = forms.ModelChoiceField(
        queryset=Organization.objects.none(), empty_label=None
    )
    valid_hours = forms.IntegerField(min_value=1, max_value=MAX_TOKEN_HOURS, initial=7 * 24, label="Valid (hours)")

    def __init__(self, *args: Any, organizations: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = organizations  # type: ignore[attr-defined]


class EnrollmentTokenForm(_OrganizationForm):
    serial = forms.CharField(max_length=64)
    reenroll = forms.BooleanField(required=False, label="Re-enrollment (new key for an enrolled serial)")


class EnrollmentTokenBatchForm(_OrganizationForm):
    batch = forms.CharField(max_length=100, required=False, help_text="A label, e.g. the factory run.")
    serials = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), help_text="One serial per line.")

    def clean_serials(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["serials"].splitlines() if line.strip()]


class RevokeForm(forms.Form):
    reason = forms.ChoiceField(choices=RevocationReason.choices)


class TrustAnchorForm(forms.Form):
    organization: forms.ModelChoiceField[Organization] = forms.ModelChoiceField(
        queryset=Organization.objects.none(),
        required=False,
        empty_label="(deployment-wide, superusers only)",
    )
    name = forms.CharField(max_length=200, required=False)
    certificate_pem = forms.CharField(widget=forms.Textarea(attrs={"rows": 10}), label="Certificate (PEM)")

    def __init__(self, *args: Any, organizations: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = organizations  # type: ignore[attr-defined]
