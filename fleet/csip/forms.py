from __future__ import annotations

from typing import Any

from django import forms

from fleet.inventory.models import GatewayGroup, Organization, Site


class ProgramForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.none())
    name = forms.CharField(max_length=100)
    primacy = forms.IntegerField(min_value=0, max_value=255, initial=10)
    site = forms.ModelChoiceField(queryset=Site.objects.none(), required=False, help_text="or")
    group = forms.ModelChoiceField(queryset=GatewayGroup.objects.none(), required=False, help_text="or all gateways")
    default_max_lim_pct = forms.DecimalField(
        label="Default limit (%)", min_value=0, max_value=100, required=False, initial=100
    )

    def __init__(self, *args: Any, organizations: Any, sites: Any, groups: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = organizations  # type: ignore[attr-defined]
        self.fields["site"].queryset = sites  # type: ignore[attr-defined]
        self.fields["group"].queryset = groups  # type: ignore[attr-defined]


class ControlForm(forms.Form):
    KINDS = [
        ("export", "Export limit (W)"),
        ("curtail", "Curtailment (% of WMax)"),
        ("disconnect", "Disconnect"),
        ("pf_inject", "Fixed power factor, injecting vars"),
        ("pf_absorb", "Fixed power factor, absorbing vars"),
    ]

    kind = forms.ChoiceField(choices=KINDS)
    value = forms.DecimalField(
        min_value=0, required=False, help_text="W for an export limit, % for a curtailment, 0..1 for a power factor"
    )
    start = forms.DateTimeField(help_text="UTC, e.g. 2026-12-03 16:00")
    duration_minutes = forms.IntegerField(min_value=1, max_value=24 * 60, initial=240)
    randomize_start_s = forms.IntegerField(min_value=-3600, max_value=3600, initial=0, label="Randomize start (s)")
    randomize_duration_s = forms.IntegerField(
        min_value=-3600, max_value=3600, initial=0, label="Randomize duration (s)"
    )
    description = forms.CharField(max_length=32, required=False)
