from __future__ import annotations

from typing import Any

from django import forms

from fleet.inventory.models import Organization

from .models import ArtifactType, ConfigTemplate, name_validator


class ArtifactUploadForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.none())
    type = forms.ChoiceField(choices=ArtifactType.choices)
    name = forms.CharField(max_length=64, validators=[name_validator])
    version = forms.CharField(max_length=64, help_text="Semantic version, e.g. 2.1.0")
    hardware_models = forms.CharField(
        required=False, help_text="Comma-separated; empty: take them from the bundle's manifest."
    )
    release_notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    file = forms.FileField()
    sha256 = forms.RegexField(r"^[0-9a-fA-F]{64}$", required=False, label="Expected SHA-256")

    def __init__(self, *args: Any, organizations: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = organizations  # type: ignore[attr-defined]

    def clean_hardware_models(self) -> list[str]:
        return [m.strip() for m in self.cleaned_data["hardware_models"].split(",") if m.strip()]


class ConfigBuildForm(forms.Form):
    template = forms.ModelChoiceField(queryset=ConfigTemplate.objects.none())

    def __init__(self, *args: Any, templates: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = templates  # type: ignore[attr-defined]


class LicenseForm(forms.Form):
    field_devices = forms.IntegerField(min_value=0, label="Field devices allowed")
    features = forms.CharField(required=False, help_text="Comma-separated feature names.")
    valid_days = forms.IntegerField(min_value=1, max_value=3650, initial=365)

    def clean_features(self) -> list[str]:
        return [f.strip() for f in self.cleaned_data["features"].split(",") if f.strip()]
