"""The create form of the web UI; it builds the same DeploymentRequest as the API serializer."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from django import forms

from fleet.inventory.models import Gateway

from .api.serializers import DeploymentRequest
from .models import Deployment
from .plans import DEFAULT_PHASES, PhaseSpec, RolloutPlan, TargetSpec

PHASE_LINE = re.compile(r"^(?P<name>[\w.-]+)\s+(?P<size>\d+)(?P<pct>%?)(?P<options>(\s+(soak=\d+|approve))*)\s*$")


def phase_line(spec: PhaseSpec) -> str:
    size = f"{spec.percent}%" if spec.percent is not None else str(spec.count)
    soak = f" soak={int(spec.min_soak.total_seconds() // 60)}" if spec.min_soak else ""
    return f"{spec.name} {size}{soak}{'' if spec.auto_advance else ' approve'}"


def parse_phase_lines(text: str) -> tuple[PhaseSpec, ...]:
    """One phase per line: `name 10%` or `name 25` (a count), then `soak=MINUTES` and/or `approve`."""
    phases = []
    for number, line in enumerate(filter(None, (raw.strip() for raw in text.splitlines())), start=1):
        match = PHASE_LINE.match(line)
        if match is None:
            raise forms.ValidationError(f"Line {number} {line!r}: write e.g. 'canary 1% soak=60 approve'.")
        size, options = int(match["size"]), match["options"].split()
        soak = next((int(o.split("=")[1]) for o in options if o.startswith("soak=")), 0)
        phases.append(
            PhaseSpec(
                name=match["name"],
                percent=size if match["pct"] else None,
                count=None if match["pct"] else size,
                min_soak=timedelta(minutes=soak),
                auto_advance="approve" not in options,
            )
        )
    if not phases:
        raise forms.ValidationError("Give at least one phase.")
    return tuple(phases)


DEFAULTS = RolloutPlan()


class DeploymentForm(forms.Form):
    organization: forms.ModelChoiceField[Any] = forms.ModelChoiceField(queryset=None)
    name = forms.CharField(max_length=100, required=False)
    artifacts: forms.ModelMultipleChoiceField[Any] = forms.ModelMultipleChoiceField(
        queryset=None, help_text="One type; one build per hardware model."
    )
    target_kind = forms.ChoiceField(choices=Deployment.TargetKind.choices, initial="group")
    target_group: forms.ModelChoiceField[Any] = forms.ModelChoiceField(queryset=None, required=False)
    target_filter = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='JSON, as for dynamic groups: {"hardware_model": ["GF-100"], "tags": ["pilot"]}',
    )
    target_gateways = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Serials, separated by spaces or commas."
    )
    include_new_gateways = forms.BooleanField(
        required=False, initial=True, label="Include gateways that join the group later"
    )
    phases = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        initial="\n".join(phase_line(p) for p in DEFAULT_PHASES),
        help_text="One per line, cumulative: 'canary 1% soak=60', 'early 25 soak=240 approve' (a count), 'all 100%'.",
    )
    rate_limit_per_minute = forms.IntegerField(min_value=1, required=False, help_text="Gateways per minute.")
    jitter_seconds = forms.IntegerField(min_value=0, initial=DEFAULTS.jitter_seconds)
    window_start = forms.TimeField(required=False, help_text="Install window, site local time (HH:MM).")
    window_end = forms.TimeField(required=False)
    sun_down_only = forms.BooleanField(required=False, label="Install only when the sun is down at the site")
    gateway_timeout_minutes = forms.IntegerField(min_value=1, initial=120)
    max_retries = forms.IntegerField(min_value=0, max_value=10, initial=DEFAULTS.max_retries)
    retry_backoff_minutes = forms.IntegerField(min_value=0, initial=10)
    success_threshold_pct = forms.IntegerField(min_value=0, max_value=100, initial=DEFAULTS.success_threshold_pct)
    failure_threshold_pct = forms.IntegerField(
        min_value=0, max_value=100, required=False, initial=DEFAULTS.failure_threshold_pct
    )
    failure_threshold_count = forms.IntegerField(min_value=1, required=False)
    failure_min_sample = forms.IntegerField(min_value=1, initial=DEFAULTS.failure_min_sample)

    def __init__(
        self, *args: Any, organizations: Any, artifacts: Any, groups: Any, gateways: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.gateways = gateways
        self.fields["organization"].queryset = organizations  # type: ignore[attr-defined]
        self.fields["artifacts"].queryset = artifacts  # type: ignore[attr-defined]
        self.fields["target_group"].queryset = groups  # type: ignore[attr-defined]

    def clean_phases(self) -> tuple[PhaseSpec, ...]:
        return parse_phase_lines(self.cleaned_data["phases"])

    def clean_target_filter(self) -> dict[str, Any]:
        text = self.cleaned_data["target_filter"].strip()
        try:
            value = json.loads(text) if text else {}
        except json.JSONDecodeError as e:
            raise forms.ValidationError(f"Not JSON: {e}") from e
        if not isinstance(value, dict):
            raise forms.ValidationError("Give a JSON object.")
        return value

    def clean_target_gateways(self) -> tuple[Gateway, ...]:
        serials = [s for s in re.split(r"[\s,]+", self.cleaned_data["target_gateways"]) if s]
        found = {g.serial: g for g in self.gateways.filter(serial__in=serials)}
        missing = [s for s in serials if s not in found]
        if missing:
            raise forms.ValidationError(f"Unknown gateways: {', '.join(missing[:10])}.")
        return tuple(found[s] for s in dict.fromkeys(serials))

    def to_request(self) -> DeploymentRequest:
        data = self.cleaned_data
        plan = RolloutPlan(
            phases=data["phases"],
            rate_limit_per_minute=data["rate_limit_per_minute"],
            jitter_seconds=data["jitter_seconds"],
            window_start=data["window_start"],
            window_end=data["window_end"],
            sun_down_only=data["sun_down_only"],
            gateway_timeout=timedelta(minutes=data["gateway_timeout_minutes"]),
            max_retries=data["max_retries"],
            retry_backoff=timedelta(minutes=data["retry_backoff_minutes"]),
            success_threshold_pct=data["success_threshold_pct"],
            failure_threshold_pct=data["failure_threshold_pct"],
            failure_threshold_count=data["failure_threshold_count"],
            failure_min_sample=data["failure_min_sample"],
        )
        target = TargetSpec(
            kind=data["target_kind"],
            group=data["target_group"],
            filter=data["target_filter"],
            gateways=data["target_gateways"],
        )
        return DeploymentRequest(
            organization=data["organization"],
            name=data["name"],
            artifacts=list(data["artifacts"]),
            target=target,
            plan=plan,
            include_new_gateways=data["include_new_gateways"],
        )
