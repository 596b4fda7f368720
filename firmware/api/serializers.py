from __future__ import annotations

from typing import Any

from django.template import Engine, TemplateSyntaxError
from rest_framework import serializers

from fleet.inventory.models import Gateway, Organization

from ..models import Artifact, ArtifactType, Assignment, ConfigTemplate, ConfigValues, DeviceBundle


def limit_choices(field: Any, queryset: Any) -> None:
    """Related-field choices are narrowed per request to what the user may see (None: schema generation)."""
    if queryset is not None:
        field.queryset = queryset


class ArtifactSerializer(serializers.ModelSerializer[Artifact]):
    sha256 = serializers.CharField(source="blob_id", read_only=True)
    size = serializers.IntegerField(source="blob.size", read_only=True)
    target_path = serializers.CharField(read_only=True)

    class Meta:
        model = Artifact
        fields = [
            "id",
            "organization",
            "type",
            "name",
            "version",
            "hardware_models",
            "release_notes",
            "sha256",
            "size",
            "target_path",
            "manifest",
            "created",
        ]
        read_only_fields = fields


class CommaSeparatedListField(serializers.ListField):
    """Accepts a JSON list or, from forms and curl -F, one comma-separated string."""

    def to_internal_value(self, data: Any) -> list[Any]:
        if isinstance(data, list) and len(data) == 1 and isinstance(data[0], str):
            data = data[0]
        if isinstance(data, str):
            data = [item.strip() for item in data.split(",") if item.strip()]
        return super().to_internal_value(data)


class ArtifactUploadSerializer(serializers.Serializer[Any]):
    organization = serializers.PrimaryKeyRelatedField(queryset=Organization.objects.none())
    type = serializers.ChoiceField(choices=ArtifactType.choices)
    name = serializers.RegexField(r"^[a-z0-9][a-z0-9._-]{0,63}$")
    version = serializers.CharField(max_length=64)
    hardware_models = CommaSeparatedListField(child=serializers.CharField(max_length=64), required=False, default=list)
    release_notes = serializers.CharField(required=False, allow_blank=True, default="")
    file = serializers.FileField()
    size = serializers.IntegerField(required=False, min_value=0, help_text="Declared size in bytes.")
    sha256 = serializers.RegexField(r"^[0-9a-fA-F]{64}$", required=False, help_text="Declared SHA-256.")

    def __init__(self, *args: Any, organizations: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit_choices(self.fields["organization"], organizations)


class AssignmentSerializer(serializers.ModelSerializer[Assignment]):
    class Meta:
        model = Assignment
        fields = ["id", "gateway", "artifact_type", "artifact", "bundle", "deployment", "install", "updated"]
        read_only_fields = fields


class AssignRequestSerializer(serializers.Serializer[Any]):
    gateway = serializers.PrimaryKeyRelatedField(queryset=Gateway.objects.none())
    artifact = serializers.PrimaryKeyRelatedField(queryset=Artifact.objects.none())

    def __init__(self, *args: Any, gateways: Any = None, artifacts: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit_choices(self.fields["gateway"], gateways)
        limit_choices(self.fields["artifact"], artifacts)


class DeviceBundleSerializer(serializers.ModelSerializer[DeviceBundle]):
    sha256 = serializers.CharField(source="blob_id", read_only=True)

    class Meta:
        model = DeviceBundle
        fields = ["id", "gateway", "kind", "version", "filename", "sha256", "source", "created"]
        read_only_fields = fields


class LicenseRequestSerializer(serializers.Serializer[Any]):
    gateway = serializers.PrimaryKeyRelatedField(queryset=Gateway.objects.none())
    limits = serializers.DictField(child=serializers.IntegerField(min_value=0), default=dict)
    features = serializers.ListField(child=serializers.CharField(max_length=64), default=list)
    valid_days = serializers.IntegerField(min_value=1, max_value=3650, default=365)

    def __init__(self, *args: Any, gateways: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit_choices(self.fields["gateway"], gateways)


class ConfigBuildRequestSerializer(serializers.Serializer[Any]):
    gateway = serializers.PrimaryKeyRelatedField(queryset=Gateway.objects.none())
    template = serializers.PrimaryKeyRelatedField(queryset=ConfigTemplate.objects.none())

    def __init__(self, *args: Any, gateways: Any = None, templates: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit_choices(self.fields["gateway"], gateways)
        limit_choices(self.fields["template"], templates)


class ConfigTemplateSerializer(serializers.ModelSerializer[ConfigTemplate]):
    class Meta:
        model = ConfigTemplate
        fields = ["id", "organization", "name", "schema", "files", "created"]
        read_only_fields = ["id", "created"]

    def validate_schema(self, value: Any) -> Any:
        from jsonschema import Draft202012Validator, SchemaError

        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as e:
            raise serializers.ValidationError(f"not a valid JSON schema: {e.message}") from e
        return value

    def validate_files(self, value: Any) -> Any:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise serializers.ValidationError('give an object {"relative/path": "template text"}')
        for path, text in value.items():
            if not path or path.startswith("/") or ".." in path.split("/"):
                raise serializers.ValidationError(f"{path}: use a relative path without '..'")
            try:
                Engine(autoescape=False).from_string(text)
            except TemplateSyntaxError as e:
                raise serializers.ValidationError(f"{path}: template syntax error: {e}") from e
        return value


class ConfigValuesSerializer(serializers.ModelSerializer[ConfigValues]):
    class Meta:
        model = ConfigValues
        fields = ["id", "template", "site", "gateway", "values", "updated"]
        read_only_fields = ["id", "updated"]

    def validate_values(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError('give an object of values, e.g. {"export_limit_kw": 10}')
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("site")) == bool(attrs.get("gateway")):
            raise serializers.ValidationError("give either a site or a gateway")
        return attrs
