"""Response status codes (IEEE 2030.5-2023 table 31, named after py20305's ResponseCode)."""

from __future__ import annotations

from py20305.events.response import ResponseCode

LABELS = {
    ResponseCode.ACKNOWLEDGED: "received",
    ResponseCode.ACTIVE: "started",
    ResponseCode.COMPLETED: "completed",
    ResponseCode.OPT_OUT: "opted out",
    ResponseCode.OPT_IN: "opted in",
    ResponseCode.CANCELLED: "cancelled",
    ResponseCode.SUPERSEDED: "superseded",
    ResponseCode.PARTIAL_OPT_OUT: "partially opted out",
    ResponseCode.PARTIAL_OPT_IN: "partially opted in",
    ResponseCode.COMPLETE_NO_PARTICIPATION: "completed without participating",
    ResponseCode.SUPERSEDED_ALTERNATE_SERVER: "superseded by another server",
    ResponseCode.SUPERSEDED_ALTERNATE_PROGRAM: "superseded by another program",
    ResponseCode.RESUMED: "resumed",
    ResponseCode.NOT_SUPPORTED: "not applied: not supported",
    ResponseCode.NOT_APPLICABLE: "not applied: not applicable",
    ResponseCode.INVALID: "not applied: invalid",
    ResponseCode.EXPIRED: "not applied: expired",
}


def response_label(status: int) -> str:
    try:
        return LABELS[ResponseCode(status)]
    except ValueError:
        return f"status {status}"
