"""Names, path patterns and lifetimes of the Gridfleet repository layout (PEP 458 shape).

root (offline, 2 of 3) -> targets (offline)
    -> firmware   "firmware/*/*"  release keys (offline-capable)
    -> devices    "devices/*/*"   static role holding a TAP 15 succinct_roles delegation
        -> bins-000 .. bins-<2^k-1>  online key
snapshot, timestamp: online keys
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from tuf.api.metadata import Root, Snapshot, SuccinctRoles, Targets, Timestamp

ROOT = Root.type
TARGETS = Targets.type
SNAPSHOT = Snapshot.type
TIMESTAMP = Timestamp.type
FIRMWARE = "firmware"
DEVICES = "devices"
BINS = "bins"

FIRMWARE_PATTERN = "firmware/*/*"
# TUF's "*" does not match "/": one path segment for the token, one for the file name.
DEVICES_PATTERN = "devices/*/*"

# Roles whose keys never touch the server; changes to them go through export/sign/import.
OFFLINE_ROLES = (ROOT, TARGETS, FIRMWARE, DEVICES)
# Keys the server holds through securesystemslib signers.
ONLINE_KEY_ROLES = (TIMESTAMP, SNAPSHOT, BINS)

MIN_BIT_LENGTH = 4
MAX_BIT_LENGTH = 11


@dataclass(frozen=True)
class Lifetimes:
    """How long each role's signature is valid and when the server re-signs it."""

    timestamp: timedelta = timedelta(days=1)
    bins: timedelta = timedelta(days=1)
    # Bin i expires `bins + bin_stagger * i / n` after signing so re-signing spreads over the day
    # instead of landing on every bin at once.
    bin_stagger: timedelta = timedelta(hours=12)
    snapshot: timedelta = timedelta(days=7)
    offline: timedelta = timedelta(days=365)
    # Online roles are re-signed once less than this fraction of their lifetime remains.
    resign_fraction: float = 0.5
    # Offline roles closer than this to expiry are reported so people can sign a new version.
    offline_warning: timedelta = timedelta(days=30)

    def online_margin(self, role: str) -> timedelta:
        lifetime = {TIMESTAMP: self.timestamp, SNAPSHOT: self.snapshot}.get(role, self.bins)
        return lifetime * self.resign_fraction


def recommended_bit_length(
    gateways: int, targets_per_gateway: int = 3, changes_per_poll_interval: int | None = None
) -> int:
    """Bits of the succinct delegation (2^bits bins) for a fleet size.

    Balances the bin a gateway downloads against the snapshot every poll after a change pulls:
    bins ~ (16.5 x changes per poll interval x targets)^(1/3). Changes default to 0.1% of the
    fleet per poll interval.
    """
    targets = max(1, gateways * targets_per_gateway)
    changes = changes_per_poll_interval or max(1, gateways // 1000)
    bins = (16.5 * changes * targets) ** (1 / 3)
    bits = round(math.log2(max(bins, 1)))
    return min(MAX_BIT_LENGTH, max(MIN_BIT_LENGTH, bits))


def succinct_roles(keyids: list[str], bit_length: int, threshold: int = 1) -> SuccinctRoles:
    return SuccinctRoles(keyids=keyids, threshold=threshold, bit_length=bit_length, name_prefix=BINS)


def device_target_path(token: str, filename: str) -> str:
    if "/" in token or "/" in filename:
        raise ValueError("device target token and file name must be single path segments")
    return f"{DEVICES}/{token}/{filename}"


def bin_index(bin_name: str) -> int:
    return int(bin_name.rsplit("-", 1)[1], 16)
