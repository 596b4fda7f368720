"""CSV formats for bulk import and export of sites and gateways.

Columns are fixed and documented here; an export can be edited and imported into another
organization. Relations are written by natural key: organization slug, site name, tag slugs
separated by ';'.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.http import HttpResponse

from fleet.core.errors import DomainError

from .models import Gateway, Site

SITE_COLUMNS = [
    "organization",
    "name",
    "address",
    "latitude",
    "longitude",
    "timezone",
    "utility_account",
    "nameplate_kw",
]
GATEWAY_COLUMNS = ["organization", "serial", "name", "site", "hardware_model", "firmware_version", "status", "tags"]
REQUIRED_COLUMNS = {"sites": {"organization", "name"}, "gateways": {"organization", "serial", "hardware_model"}}
COLUMNS = {"sites": SITE_COLUMNS, "gateways": GATEWAY_COLUMNS}


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}


class CsvFormatError(DomainError):
    """The file is refused as a whole; `errors` says what to fix, row by row."""

    code = "invalid_csv"

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("Nothing was imported; fix these rows and try again.")
        self.errors = errors
        # Rendered as the API error body's `errors` list.
        self.items = [error.as_dict() for error in errors]


def read_rows(kind: str, text: str, *, max_rows: int) -> list[tuple[int, dict[str, str]]]:
    """Rows keyed by column with their line numbers (the header is line 1); refuses a bad header."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in (reader.fieldnames or [])]
    reader.fieldnames = header
    unknown = [name for name in header if name not in COLUMNS[kind]]
    missing = sorted(REQUIRED_COLUMNS[kind] - set(header))
    errors = [RowError(1, name, f"Unknown column; expected some of {', '.join(COLUMNS[kind])}.") for name in unknown]
    errors += [RowError(1, name, "Required column is missing.") for name in missing]
    if errors:
        raise CsvFormatError(errors)
    rows: list[tuple[int, dict[str, str]]] = []
    for row in reader:
        if None in row:
            raise CsvFormatError([RowError(reader.line_num, "", "More values than columns.")])
        if len(rows) >= max_rows:
            raise CsvFormatError([RowError(reader.line_num, "", f"More than {max_rows} rows; split the file.")])
        rows.append((reader.line_num, {key: (value or "").strip() for key, value in row.items()}))
    if not rows:
        raise CsvFormatError([RowError(1, "", "The file has a header but no rows.")])
    return rows


def _write(columns: list[str], rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row[key] for key in columns})
    return out.getvalue()


def export_sites(sites: Iterable[Site]) -> str:
    return _write(
        SITE_COLUMNS,
        ({**{c: getattr(site, c) for c in SITE_COLUMNS[1:]}, "organization": site.organization.slug} for site in sites),
    )


def export_gateways(gateways: Iterable[Gateway]) -> str:
    return _write(
        GATEWAY_COLUMNS,
        (
            {
                **{c: getattr(gateway, c) for c in ("serial", "name", "hardware_model", "firmware_version", "status")},
                "organization": gateway.organization.slug,
                "site": gateway.site.name if gateway.site else "",
                "tags": ";".join(tag.slug for tag in gateway.tags.all()),
            }
            for gateway in gateways
        ),
    )


EXPORTERS: dict[str, Callable[[Iterable[Any]], str]] = {"sites": export_sites, "gateways": export_gateways}


def export_response(kind: str, rows: Iterable[Any]) -> HttpResponse:
    """The rows of `kind` as a CSV download (the same file for the web UI and the REST API)."""
    response = HttpResponse(EXPORTERS[kind](rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{kind}.csv"'
    return response
