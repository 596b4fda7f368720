"""Deployment status reports as ``status`` records in the durable outbox (docs/protocol/uplink.md 3.4)."""

from __future__ import annotations

from typing import Any

from gridfleet_agent.installers.runner import InstallJob, StatusReporter
from gridfleet_agent.queue import Outbox, RecordKind

MESSAGE_CHARS = 2000
LOG_EXCERPT_CHARS = 16384


def status_payload(
    *, deployment: str, step: str, bundle: str, version: str, code: str = "", message: str = "", log: str = ""
) -> dict[str, Any]:
    payload: dict[str, Any] = {"deployment": deployment, "step": step, "bundle": bundle, "version": version}
    if code:
        payload["code"] = code[:100]
    if message:
        payload["message"] = message[:MESSAGE_CHARS]
    if log:
        payload["log_excerpt"] = log[-LOG_EXCERPT_CHARS:]
    return payload


# Installs that came without a deployment (e.g. a new config version) are reported as events.
_EVENT_ON_SUCCESS = {"config": "config.applied", "license": "license.installed"}
_FINAL_STEPS = frozenset({"success", "failure", "rolled_back"})


def queue_status_reporter(outbox: Outbox) -> StatusReporter:
    """Reports go into the outbox at once, so they survive a crash and are resent until acknowledged."""

    def report(job: InstallJob, step: str, *, code: str = "", message: str = "", log: str = "") -> None:
        payload = status_payload(
            deployment=job.deployment,
            step=step,
            bundle=job.target,
            version=job.version,
            code=code,
            message=message,
            log=log,
        )
        if job.deployment:
            outbox.put(RecordKind.STATUS, payload)
        elif step in _FINAL_STEPS:
            name = _EVENT_ON_SUCCESS.get(job.kind, "install.success") if step == "success" else f"install.{step}"
            outbox.put(RecordKind.EVENT, {"name": name, "message": message[:MESSAGE_CHARS], "data": payload})

    return report
