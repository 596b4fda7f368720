"""Build, sign and publish the Gridfleet TUF repository.

`TufRepository` owns one repository directory:

    metadata/    what clients fetch (N.role.json written once, timestamp.json replaced last)
    staging/     offline-role metadata waiting for signatures made elsewhere
    keys/        online keys (firmware.tuf.keys.OnlineKeyring)
    index.json   version and expiry of every published role, so a publish touches only the
                 files it changes instead of reading 1024 bins

It is not safe for concurrent use: the Django publisher holds a database advisory lock around it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key, Signer
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from .errors import (
    AlreadyInitializedError,
    NotInitializedError,
    RepositoryError,
    StagingMismatchError,
    ThresholdNotMetError,
)
from .keys import OnlineKeyring
from .layout import (
    BINS,
    DEVICES,
    DEVICES_PATTERN,
    FIRMWARE,
    FIRMWARE_PATTERN,
    OFFLINE_ROLES,
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    Lifetimes,
    bin_index,
    succinct_roles,
)
from .store import MetadataStore

_COMPACT = JSONSerializer(compact=True)
# Offline roles in the order they must be verified: each one is checked against its delegator.
_DELEGATOR = {TARGETS: ROOT, FIRMWARE: TARGETS, DEVICES: TARGETS}


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class SigningStatus:
    """How far a staged offline role is from publishable."""

    role: str
    version: int
    signed_by: list[str]
    threshold: int
    missing: int

    @property
    def complete(self) -> bool:
        return self.missing == 0


@dataclass
class PublishResult:
    bins: list[str] = field(default_factory=list)
    offline_roles: list[str] = field(default_factory=list)
    snapshot_version: int | None = None
    timestamp_version: int | None = None
    # The firmware role changed but no release key is online: export, sign and import it.
    firmware_staged: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.timestamp_version is not None


class TufRepository:
    def __init__(
        self,
        path: Path,
        keyring: OnlineKeyring,
        *,
        lifetimes: Lifetimes | None = None,
        release_signers: list[Signer] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.path = path
        self.keyring = keyring
        self.lifetimes = lifetimes or Lifetimes()
        # Release keys held online (optional): without them firmware changes are staged for
        # offline signing.
        self.release_signers = release_signers or []
        self.clock = clock
        self.store = MetadataStore(path / "metadata")
        self.staging_dir = path / "staging"
        self._index_path = path / "index.json"
        self._index: dict[str, Any] | None = None
        self._devices_cache: tuple[int, Metadata[Targets]] | None = None

    # ------------------------------------------------------------------ state

    @property
    def index(self) -> dict[str, Any]:
        if self._index is None:
            if self._index_path.exists():
                self._index = json.loads(self._index_path.read_text())
            else:
                self._index = {"roles": {}}
        return self._index

    def _save_index(self) -> None:
        tmp = self._index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.index, sort_keys=True))
        os.replace(tmp, self._index_path)

    @property
    def is_initialized(self) -> bool:
        return ROOT in self.index["roles"]

    def _require_initialized(self) -> None:
        if not self.is_initialized:
            raise NotInitializedError("the repository has no published root; run tuf_init first")

    def version(self, role: str) -> int:
        return int(self.index["roles"][role]["version"]) if role in self.index["roles"] else 0

    def expires(self, role: str) -> datetime:
        return datetime.fromisoformat(self.index["roles"][role]["expires"])

    def load(self, role: str) -> Metadata[Any]:
        self._require_initialized()
        return Metadata.from_bytes(self.store.read(role, self.version(role)))

    def _devices(self) -> Metadata[Targets]:
        version = self.version(DEVICES)
        if self._devices_cache is None or self._devices_cache[0] != version:
            self._devices_cache = (version, self.load(DEVICES))
        return self._devices_cache[1]

    def _succinct(self, devices: Targets | None = None) -> SuccinctRoles:
        delegations = (devices or self._devices().signed).delegations
        if delegations is None or delegations.succinct_roles is None:
            raise RepositoryError("the devices role holds no succinct hash-bin delegation")
        return delegations.succinct_roles

    @property
    def bin_names(self) -> list[str]:
        return list(self._succinct().get_roles())

    def bin_for(self, target_path: str) -> str:
        """The hash bin that delegates `target_path` (a `devices/<token>/<file>` path)."""
        return self._succinct().get_role_for_target(target_path)

    # ------------------------------------------------------------- signing

    def _write_role(self, role: str, md: Metadata[Any], signers: Iterable[Signer] | None) -> bytes:
        """Sign with `signers` (None: publish the signatures made offline as they are) and write."""
        if signers is not None:
            md.signatures.clear()
            for signer in signers:
                md.sign(signer, append=True)
        data = md.to_bytes(_COMPACT)
        if role == TIMESTAMP:
            self.store.write_timestamp(data)
        else:
            self.store.write_versioned(role, md.signed.version, data)
        self.index["roles"][role] = {"version": md.signed.version, "expires": md.signed.expires.isoformat()}
        return data

    def _next_version(self, role: str) -> int:
        # The index may lag the directory after a crash between writing a file and the index:
        # skip any version already on disk rather than overwrite it.
        version = self.version(role) + 1
        while role != TIMESTAMP and self.store.exists(role, version):
            version += 1
        return version

    def _bin_expiry(self, name: str, now: datetime, count: int) -> datetime:
        stagger = self.lifetimes.bin_stagger * (bin_index(name) / count)
        return (now + self.lifetimes.bins + stagger).replace(microsecond=0)

    def _sign_bin(self, name: str, targets: dict[str, TargetFile], now: datetime, count: int) -> None:
        signed = Targets(version=self._next_version(name), expires=self._bin_expiry(name, now, count))
        signed.targets = targets
        self._write_role(name, Metadata(signed), [self.keyring.signer(BINS)])

    def _publish_snapshot_and_timestamp(self, result: PublishResult, now: datetime) -> None:
        meta = {
            f"{role}.json": MetaFile(version=self.version(role))
            for role in [TARGETS, FIRMWARE, DEVICES, *self.bin_names]
        }
        snapshot = Snapshot(version=self._next_version(SNAPSHOT), expires=now + self.lifetimes.snapshot, meta=meta)
        snapshot_bytes = self._write_role(SNAPSHOT, Metadata(snapshot), [self.keyring.signer(SNAPSHOT)])
        timestamp = Timestamp(
            version=self._next_version(TIMESTAMP),
            expires=now + self.lifetimes.timestamp,
            snapshot_meta=MetaFile.from_data(snapshot.version, snapshot_bytes, ["sha256"]),
        )
        # Written last: clients see nothing of this publish until timestamp.json names it.
        self._write_role(TIMESTAMP, Metadata(timestamp), [self.keyring.signer(TIMESTAMP)])
        self._save_index()
        result.snapshot_version = snapshot.version
        result.timestamp_version = timestamp.version

    # --------------------------------------------------------------- publish

    def publish(
        self,
        *,
        bins: Mapping[str, Iterable[TargetFile]] | None = None,
        firmware: Mapping[str, TargetFile] | None = None,
    ) -> PublishResult:
        """Publish new versions of the given bins (their complete target lists) and, when
        `firmware` differs from the published firmware role, of that role; then snapshot and
        timestamp. Bins not named keep their published version."""
        self._require_initialized()
        now = self.clock()
        result = PublishResult()
        names = set(self.bin_names)
        for name, targets in sorted((bins or {}).items()):
            if name not in names:
                raise RepositoryError(f"{name} is not a hash bin of this repository")
            by_path = {t.path: t for t in targets}
            for path in by_path:
                if self.bin_for(path) != name:
                    raise RepositoryError(f"{path} belongs to {self.bin_for(path)}, not {name}")
            self._sign_bin(name, by_path, now, len(names))
            result.bins.append(name)
        if firmware is not None and dict(firmware) != self.load(FIRMWARE).signed.targets:
            if self.release_signers:
                signed = Targets(version=self._next_version(FIRMWARE), expires=now + self.lifetimes.offline)
                signed.targets = dict(firmware)
                self._write_role(FIRMWARE, Metadata(signed), self.release_signers)
                result.offline_roles.append(FIRMWARE)
            else:
                self._stage_firmware(dict(firmware), now)
                result.firmware_staged = True
        if result.bins or result.offline_roles:
            self._publish_snapshot_and_timestamp(result, now)
        return result

    def prune_superseded(self, grace: timedelta) -> int:
        """Delete versioned files of snapshot, targets and bins older than the published version
        and than `grace` (a client mid-refresh may still fetch what the previous timestamp named).
        Root versions are kept forever: clients walk them from whatever root they trust."""
        self._require_initialized()
        cutoff = (self.clock() - grace).timestamp()
        removed = 0
        for path in self.store.directory.glob("*.*.json"):
            version, role = path.name.split(".", 2)[:2]
            if role == ROOT or not version.isdigit() or int(version) >= self.version(role):
                continue
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        return removed

    def resign_expiring(self) -> PublishResult:
        """Re-sign online roles in the last part of their lifetime; report offline roles that
        need people to sign a new version soon."""
        self._require_initialized()
        now = self.clock()
        result = PublishResult()
        names = self.bin_names
        bin_margin = self.lifetimes.online_margin(BINS)
        for name in names:
            if self.expires(name) - now < bin_margin:
                old = self.load(name)
                self._sign_bin(name, old.signed.targets, now, len(names))
                result.bins.append(name)
        for role in OFFLINE_ROLES:
            if self.expires(role) - now < self.lifetimes.offline_warning:
                if role == FIRMWARE and self.release_signers:
                    md = self.load(FIRMWARE)
                    md.signed.version = self._next_version(FIRMWARE)
                    md.signed.expires = now + self.lifetimes.offline
                    self._write_role(FIRMWARE, md, self.release_signers)
                    result.offline_roles.append(FIRMWARE)
                else:
                    result.warnings.append(
                        f"{role} expires {self.expires(role).isoformat()}: stage a re-signed version "
                        f"(tuf_stage resign {role}), sign it offline and import it"
                    )
        stale = any(self.expires(role) - now < self.lifetimes.online_margin(role) for role in (SNAPSHOT, TIMESTAMP))
        if result.bins or result.offline_roles or stale:
            self._publish_snapshot_and_timestamp(result, now)
        return result

    # --------------------------------------------------------------- staging

    def _staged_path(self, role: str) -> Path | None:
        paths = sorted(self.staging_dir.glob(f"*.{role}.json"))
        return paths[-1] if paths else None

    def staged(self, role: str) -> Metadata[Any] | None:
        path = self._staged_path(role)
        return Metadata.from_file(str(path)) if path else None

    def staged_roles(self) -> list[str]:
        return [role for role in OFFLINE_ROLES if self._staged_path(role)]

    def _stage(self, role: str, md: Metadata[Any]) -> Path:
        existing = self._staged_path(role)
        if existing:
            existing.unlink()
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        path = self.staging_dir / f"{md.signed.version}.{role}.json"
        path.write_bytes(md.to_bytes(JSONSerializer()))
        return path

    def _stage_firmware(self, targets: dict[str, TargetFile], now: datetime) -> Path | None:
        staged = self.staged(FIRMWARE)
        if staged is not None and staged.signed.targets == targets:
            return None  # already waiting for signatures; restaging would drop those collected
        signed = Targets(version=self.version(FIRMWARE) + 1, expires=now + self.lifetimes.offline)
        signed.targets = targets
        return self._stage(FIRMWARE, Metadata(signed))

    def draft_initial(
        self,
        *,
        root_keys: list[Key],
        root_threshold: int,
        targets_keys: list[Key],
        targets_threshold: int,
        release_keys: list[Key],
        release_threshold: int,
        bit_length: int,
    ) -> list[Path]:
        """Stage version 1 of root, targets, firmware and devices for offline signing."""
        if self.is_initialized:
            raise AlreadyInitializedError("the repository already has a root; rotate it instead")
        for name, keys, threshold in (
            (ROOT, root_keys, root_threshold),
            (TARGETS, targets_keys, targets_threshold),
            (FIRMWARE, release_keys, release_threshold),
        ):
            if not 1 <= threshold <= len({k.keyid for k in keys}):
                raise RepositoryError(f"{name} threshold {threshold} needs at least that many distinct keys")
        online = self.keyring.ensure()
        expires = self.clock() + self.lifetimes.offline
        root = Root(expires=expires, consistent_snapshot=True)
        for role, keys, threshold in (
            (ROOT, root_keys, root_threshold),
            (TARGETS, targets_keys, targets_threshold),
            (SNAPSHOT, [online[SNAPSHOT]], 1),
            (TIMESTAMP, [online[TIMESTAMP]], 1),
        ):
            for key in keys:
                root.add_key(key, role)
            root.roles[role].threshold = threshold
        targets = Targets(expires=expires)
        targets.delegations = Delegations(
            keys={},
            roles={
                FIRMWARE: DelegatedRole(FIRMWARE, [], release_threshold, True, paths=[FIRMWARE_PATTERN]),
                DEVICES: DelegatedRole(DEVICES, [], targets_threshold, True, paths=[DEVICES_PATTERN]),
            },
        )
        for key in release_keys:
            targets.add_key(key, FIRMWARE)
        # The static devices role changes only when the bins key rotates: the targets keys sign it.
        for key in targets_keys:
            targets.add_key(key, DEVICES)
        devices = Targets(expires=expires)
        devices.delegations = Delegations(
            keys={online[BINS].keyid: online[BINS]},
            succinct_roles=succinct_roles([online[BINS].keyid], bit_length),
        )
        return [
            self._stage(role, Metadata(signed))
            for role, signed in (
                (ROOT, root),
                (TARGETS, targets),
                (FIRMWARE, Targets(expires=expires)),
                (DEVICES, devices),
            )
        ]

    def draft_root(
        self,
        *,
        add_keys: Iterable[Key] = (),
        remove_keyids: Iterable[str] = (),
        threshold: int | None = None,
        rotate_online: Iterable[str] = (),
    ) -> Path:
        """Stage root N+1: root key changes and/or new timestamp/snapshot keys (created now,
        active once the new root is published)."""
        self._require_initialized()
        md = self.load(ROOT)
        root: Root = md.signed
        root.version += 1
        root.expires = self.clock() + self.lifetimes.offline
        for key in add_keys:
            root.add_key(key, ROOT)
        for keyid in remove_keyids:
            root.revoke_key(keyid, ROOT)
        if threshold is not None:
            root.roles[ROOT].threshold = threshold
        if len(root.roles[ROOT].keyids) < root.roles[ROOT].threshold:
            raise RepositoryError("root would have fewer keys than its threshold")
        for role in rotate_online:
            if role not in (SNAPSHOT, TIMESTAMP):
                raise RepositoryError(f"{role} keys are not listed in root")
            new_key = self.keyring.stage_rotation(role)
            for keyid in list(root.roles[role].keyids):
                root.revoke_key(keyid, role)
            root.add_key(new_key, role)
        md.signatures.clear()
        return self._stage(ROOT, md)

    def draft_bins_rotation(self) -> Path:
        """Stage devices N+1 delegating the bins to a new online key."""
        self._require_initialized()
        md = self.load(DEVICES)
        succinct = self._succinct(md.signed)
        new_key = self.keyring.stage_rotation(BINS)
        md.signed.delegations.keys = {new_key.keyid: new_key}
        succinct.keyids = [new_key.keyid]
        md.signed.version += 1
        md.signed.expires = self.clock() + self.lifetimes.offline
        md.signatures.clear()
        return self._stage(DEVICES, md)

    def draft_resign(self, role: str) -> Path:
        """Stage an offline role unchanged but for a new version and expiry."""
        if role not in OFFLINE_ROLES:
            raise RepositoryError(f"{role} is signed online; the server re-signs it itself")
        md = self.load(role)
        md.signed.version += 1
        md.signed.expires = self.clock() + self.lifetimes.offline
        md.signatures.clear()
        return self._stage(role, md)

    # ------------------------------------------------------ signatures, import

    def _delegator(self, role: str) -> Metadata[Any] | None:
        """The metadata that lists `role`'s keys: staged if it is being replaced, else published."""
        if role == ROOT:
            return self.load(ROOT) if self.is_initialized else None
        parent = _DELEGATOR[role]
        return self.staged(parent) or self.load(parent)

    def signing_status(self, role: str, md: Metadata[Any] | None = None) -> SigningStatus:
        md = md or self.staged(role)
        if md is None:
            raise RepositoryError(f"no staged {role} metadata")
        if role == ROOT:
            previous = self._delegator(ROOT)
            result = md.signed.get_root_verification_result(
                previous.signed if previous else None, md.signed_bytes, md.signatures
            )
            # Old and new root must each reach their threshold; a key in both counts for both.
            missing = max(result.first.missing, result.second.missing)
            threshold = max(result.first.threshold, result.second.threshold)
        else:
            delegator = self._delegator(role)
            if delegator is None:
                raise RepositoryError(f"nothing delegates to {role}")
            result = delegator.signed.get_verification_result(role, md.signed_bytes, md.signatures)
            missing, threshold = result.missing, result.threshold
        return SigningStatus(role, md.signed.version, sorted(result.signed), threshold, missing)

    def add_signatures(self, data: bytes, role: str) -> SigningStatus:
        """Merge the signatures of `data` (staged metadata signed elsewhere) into the staged copy."""
        staged = self.staged(role)
        if staged is None:
            raise RepositoryError(f"no staged {role} metadata to add signatures to")
        signed = Metadata.from_bytes(data)
        if signed.signed_bytes != staged.signed_bytes:
            raise StagingMismatchError(
                f"the signed {role} differs from staged version {staged.signed.version}; "
                "export the staged file again and sign that"
            )
        staged.signatures.update(signed.signatures)
        self._stage(role, staged)
        return self.signing_status(role)

    def _roles_ready_to_publish(self) -> list[str]:
        """The staged roles whose signatures meet their threshold; ThresholdNotMetError if none may go."""
        roles = self.staged_roles()
        statuses = {role: self.signing_status(role) for role in roles}
        ready = [role for role in roles if statuses[role].complete]
        if not self.is_initialized and len(ready) < len(OFFLINE_ROLES):
            waiting = ", ".join(
                f"{s.role} needs {s.missing} more signature(s)" for s in statuses.values() if not s.complete
            )
            raise ThresholdNotMetError(f"cannot publish the initial repository: {waiting or 'nothing staged'}")
        if not ready:
            raise ThresholdNotMetError(
                "; ".join(f"{s.role} needs {s.missing} more signature(s)" for s in statuses.values())
                or "nothing staged"
            )
        return ready

    def _promote_named_keys(self) -> bool:
        """Make the pending online keys named by the just-published metadata active; True if bins rotated."""
        root = self.load(ROOT).signed
        for role in (SNAPSHOT, TIMESTAMP):
            if (
                self.keyring.has_pending(role)
                and self.keyring.public_key(role, pending=True).keyid in root.roles[role].keyids
            ):
                self.keyring.promote(role)
        if (
            self.keyring.has_pending(BINS)
            and self.keyring.public_key(BINS, pending=True).keyid in self._succinct().keyids
        ):
            self.keyring.promote(BINS)
            return True
        return False

    def publish_staged(self) -> PublishResult:
        """Publish every staged offline role whose signatures meet its threshold.

        The first publish needs all four offline roles; it also publishes the empty hash bins.
        New online keys named by the published metadata become active, and every role they sign
        is re-signed.
        """
        ready = self._roles_ready_to_publish()
        now = self.clock()
        initial = not self.is_initialized
        result = PublishResult()
        for role in (r for r in OFFLINE_ROLES if r in ready):
            md = self.staged(role)
            assert md is not None  # listed by staged_roles()
            self._write_role(role, md, None)
            result.offline_roles.append(role)
        for role in ready:
            path = self._staged_path(role)
            if path:
                path.unlink()
        self._save_index()
        rotated_bins = self._promote_named_keys()
        names = self.bin_names
        if initial:
            for name in names:
                self._sign_bin(name, {}, now, len(names))
                result.bins.append(name)
        elif rotated_bins or DEVICES in ready:
            for name in names:
                self._sign_bin(name, self.load(name).signed.targets, now, len(names))
                result.bins.append(name)
        self._publish_snapshot_and_timestamp(result, now)
        return result

    def status(self) -> dict[str, Any]:
        roles = {
            role: {"version": info["version"], "expires": info["expires"]}
            for role, info in self.index["roles"].items()
            if not role.startswith(f"{BINS}-")
        }
        bins = [role for role in self.index["roles"] if role.startswith(f"{BINS}-")]
        return {
            "initialized": self.is_initialized,
            "roles": roles,
            "bins": len(bins),
            "staged": {role: vars(self.signing_status(role)) for role in self.staged_roles()},
        }
