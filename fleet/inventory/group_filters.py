"""Dynamic group filters: a small JSON language over gateway fields, tags and reported attributes.

    {"site": [3, 5], "hardware_model": ["GW-200"], "status": ["active"],
     "firmware_version": ["1.4.2"], "tags": ["pilot", "ca"], "attributes": {"os": "linux"}}

Keys combine with AND; values in a list match any (OR); `tags` requires every tag listed;
`attributes` matches reported attributes by exact value. An empty filter matches no gateway, so
a half-written group can never target the whole fleet.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

LIST_KEYS = {
    "site": "site_id__in",
    "hardware_model": "hardware_model__in",
    "status": "status__in",
    "firmware_version": "firmware_version__in",
}
ALLOWED_KEYS = set(LIST_KEYS) | {"tags", "attributes"}


def validate_group_filter(group_filter: Any) -> None:
    if not isinstance(group_filter, dict) or not group_filter:
        raise ValidationError({"filter": "A dynamic group needs a non-empty filter object."})
    unknown = set(group_filter) - ALLOWED_KEYS
    if unknown:
        raise ValidationError({"filter": f"Unknown filter keys {sorted(unknown)}; allowed: {sorted(ALLOWED_KEYS)}."})
    for key in (*LIST_KEYS, "tags"):
        if key in group_filter:
            values = group_filter[key]
            expected = int if key == "site" else str
            if (
                not isinstance(values, list)
                or not values
                or not all(isinstance(v, expected) and not isinstance(v, bool) for v in values)
            ):
                raise ValidationError({"filter": f"'{key}' must be a non-empty list of {expected.__name__} values."})
    if "attributes" in group_filter:
        attributes = group_filter["attributes"]
        if (
            not isinstance(attributes, dict)
            or not attributes
            or not all(isinstance(v, str | int | float | bool) for v in attributes.values())
        ):
            raise ValidationError({"filter": "'attributes' must map attribute names to plain values."})


def apply_group_filter(gateways: QuerySet[Any], group_filter: dict[str, Any]) -> QuerySet[Any]:
    condition = Q()
    for key, lookup in LIST_KEYS.items():
        if key in group_filter:
            condition &= Q(**{lookup: group_filter[key]})
    for name, value in group_filter.get("attributes", {}).items():
        condition &= Q(**{f"attributes__{name}": value})
    matched = gateways.filter(condition)
    for tag in group_filter.get("tags", []):
        matched = matched.filter(tags__slug=tag)
    return matched.distinct()
