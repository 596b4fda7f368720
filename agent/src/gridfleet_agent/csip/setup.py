"""From the `csip` section of the signed configuration (or the local `[csip]` development
fallback) to a running link's configuration (keys: docs/utility-link.md, "The agent side").

    {"der": [{"kind": "inverter", "rated_w": 10000}], "post_rate": 300}
    # With a utility's own PKI, name the files it issued (otherwise the identity comes from the
    # fleet server's test utility PKI through a CSR, and so do server_url and the PIN):
    # "server_url", "certificate", "key", "ca_bundle", "pin"
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gridfleet_agent.csip import identity
from gridfleet_agent.csip.config import CsipConfig


def expand_der(table: Mapping[str, Any], device_ids: Callable[[str | None], list[str]]) -> list[dict[str, Any]]:
    """`der` entries naming a kind ("inverter") become one entry per field device of that kind."""
    entries = []
    for raw in table.get("der") or []:
        if isinstance(raw, Mapping) and isinstance(raw.get("kind"), str) and "field_device" not in raw:
            entries += [{"field_device": d, "rated_w": raw.get("rated_w")} for d in device_ids(raw["kind"])]
        else:
            entries.append(raw)
    return entries


def link_config(
    table: Mapping[str, Any],
    *,
    base: Path,
    state_dir: Path,
    device_ids: Callable[[str | None], list[str]],
    server_url: str,
    token: Callable[[], str],
    serial: str,
    ssl_context: ssl.SSLContext | None,
) -> CsipConfig:
    """Resolve the table (relative file paths against `base`); obtains the utility-link identity by
    CSR into `state_dir` when no certificate is named. Blocking (the CSR round trip): run it in a thread."""
    data = dict(table)
    data["der"] = expand_der(table, device_ids)
    if "certificate" not in data:
        found = identity.obtain(state_dir, server_url=server_url, token=token(), serial=serial, ssl_context=ssl_context)
        data.update(
            certificate=str(found.certificate),
            key=str(found.key),
            ca_bundle=str(found.ca_bundle),
            server_url=data.get("server_url", found.server_url),
            dcap_path=data.get("dcap_path", found.dcap_path),
            pin=data.get("pin", found.pin),
        )
    return CsipConfig.from_dict(data, base=base)
