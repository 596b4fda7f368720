"""The TUF repository core (firmware.tuf): publishing, never overwriting, re-signing, offline signing.

Pure python-tuf; no Django. Clients are exercised against the server in test_tuf_clients.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, Snapshot, TargetFile, Timestamp

from firmware.tuf.bootstrap import OfflineKeys, generate_offline_keys, initialise, sign_staged
from firmware.tuf.errors import PublishedFileExistsError, StagingMismatchError, ThresholdNotMetError
from firmware.tuf.keys import OnlineKeyring, generate_key_file
from firmware.tuf.layout import DEVICES, ROOT, SNAPSHOT, TIMESTAMP, recommended_bit_length
from firmware.tuf.repository import TufRepository
from tests.conftest import NOON_PACIFIC

PASSPHRASE = "test-passphrase"


class Clock:
    def __init__(self) -> None:
        self.now = NOON_PACIFIC.replace(hour=12, minute=0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def offline_keys(tmp_path: Path) -> OfflineKeys:
    return generate_offline_keys(tmp_path / "offline", PASSPHRASE)


@pytest.fixture
def repo(tmp_path: Path, clock: Clock, offline_keys: OfflineKeys) -> TufRepository:
    repository = TufRepository(
        tmp_path / "repo", OnlineKeyring(tmp_path / "repo" / "keys", lambda: PASSPHRASE), clock=clock
    )
    initialise(repository, offline_keys, bit_length=4)
    return repository


def device_target(token: str, name: str = "assignment.json", data: bytes = b"{}") -> TargetFile:
    return TargetFile.from_data(f"devices/{token}/{name}", data)


def test_initial_publish_has_pep458_layout_with_succinct_bins(repo: TufRepository) -> None:
    root = repo.load(ROOT).signed
    assert root.consistent_snapshot
    assert root.roles[ROOT].threshold == 2 and len(root.roles[ROOT].keyids) == 3
    targets = repo.load("targets").signed
    assert {r.name: r.paths for r in targets.delegations.roles.values()} == {
        "firmware": ["firmware/*/*"],
        "devices": ["devices/*/*"],
    }
    devices = repo.load(DEVICES).signed
    assert devices.delegations.roles is None
    assert devices.delegations.succinct_roles.bit_length == 4
    assert len(repo.bin_names) == 16
    assert all(repo.version(name) == 1 for name in repo.bin_names)


def test_publish_signs_only_changed_bins_and_writes_timestamp_last(repo: TufRepository) -> None:
    target = device_target("a" * 32)
    changed = repo.bin_for(target.path)
    before = {name: repo.version(name) for name in repo.bin_names}
    result = repo.publish(bins={changed: [target]})
    assert result.bins == [changed]
    assert {name: repo.version(name) for name in repo.bin_names} == {**before, changed: before[changed] + 1}
    bin_file = repo.store.path(changed, repo.version(changed))
    snapshot_file = repo.store.path(SNAPSHOT, repo.version(SNAPSHOT))
    timestamp_file = repo.store.path(TIMESTAMP)
    assert bin_file.stat().st_mtime_ns <= snapshot_file.stat().st_mtime_ns <= timestamp_file.stat().st_mtime_ns
    timestamp = Metadata[Timestamp].from_file(str(timestamp_file)).signed
    assert timestamp.snapshot_meta.version == repo.version(SNAPSHOT)
    assert (
        Metadata[Snapshot].from_file(str(snapshot_file)).signed.meta[f"{changed}.json"].version == before[changed] + 1
    )


def test_publish_refuses_a_target_in_the_wrong_bin(repo: TufRepository) -> None:
    target = device_target("b" * 32)
    wrong = next(name for name in repo.bin_names if name != repo.bin_for(target.path))
    with pytest.raises(Exception, match="belongs to"):
        repo.publish(bins={wrong: [target]})


def test_published_metadata_files_are_never_overwritten(repo: TufRepository) -> None:
    name = repo.bin_names[0]
    path = repo.store.path(name, 1)
    original = path.read_bytes()
    with pytest.raises(PublishedFileExistsError):
        repo.store.write_versioned(name, 1, b"{}")
    # A crash after writing 2.bins-0.json but before the index recorded it:
    repo.store.write_versioned(name, 2, b"left over by a crashed publisher")
    repo.publish(bins={name: []})
    assert repo.version(name) == 3
    assert path.read_bytes() == original
    assert repo.store.path(name, 2).read_bytes() == b"left over by a crashed publisher"


def test_resign_renews_expiring_online_roles_with_staggered_bin_expiries(repo: TufRepository, clock: Clock) -> None:
    expiries = sorted(repo.expires(name) for name in repo.bin_names)
    assert expiries[0] < expiries[-1], "bins must not all expire at the same moment"
    assert repo.resign_expiring().bins == []

    clock.now += timedelta(hours=13)
    result = repo.resign_expiring()
    assert 0 < len(result.bins) < len(repo.bin_names)
    assert result.timestamp_version is not None
    assert all(repo.expires(name) - clock.now > timedelta(hours=12) for name in result.bins)

    clock.now += timedelta(days=340)
    warnings = repo.resign_expiring().warnings
    assert any(w.startswith("root expires") for w in warnings)
    assert all(repo.expires(name) > clock.now for name in repo.bin_names)


def test_offline_root_needs_the_threshold_of_signatures_made_elsewhere(
    repo: TufRepository, offline_keys: OfflineKeys, tmp_path: Path
) -> None:
    new_key = generate_key_file(tmp_path / "offline" / "root-4.pem", PASSPHRASE)
    staged = repo.draft_root(add_keys=[new_key], remove_keyids=[offline_keys.root[2].public_key.keyid])
    exported = staged.read_bytes()

    # Two people sign their own copy of the exported file; the server merges the signatures.
    first = Metadata.from_bytes(exported)
    first.sign(offline_keys.root[0], append=True)
    status = repo.add_signatures(first.to_bytes(), ROOT)
    assert (status.complete, status.missing) == (False, 1)  # 1 of 2 for old root and for new root
    with pytest.raises(ThresholdNotMetError, match="root needs"):
        repo.publish_staged()

    tampered = Metadata.from_bytes(exported)
    tampered.signed.roles[ROOT].threshold = 1
    tampered.sign(offline_keys.root[1], append=True)
    with pytest.raises(StagingMismatchError):
        repo.add_signatures(tampered.to_bytes(), ROOT)

    second = Metadata.from_bytes(exported)
    second.sign(offline_keys.root[1], append=True)
    assert repo.add_signatures(second.to_bytes(), ROOT).complete
    result = repo.publish_staged()
    assert result.offline_roles == [ROOT]
    assert repo.version(ROOT) == 2
    assert json.loads(repo.store.read(ROOT, 1))["signed"]["version"] == 1  # old roots stay published


def test_online_key_rotation_switches_the_signer_when_the_new_root_is_published(
    repo: TufRepository, offline_keys: OfflineKeys
) -> None:
    old_key = repo.keyring.public_key(TIMESTAMP)
    repo.draft_root(rotate_online=[TIMESTAMP])
    assert repo.keyring.signer(TIMESTAMP).public_key == old_key  # not active before the root is signed
    sign_staged(repo, ROOT, offline_keys.root[:2])
    repo.publish_staged()
    new_key = repo.keyring.public_key(TIMESTAMP)
    assert new_key.keyid != old_key.keyid
    timestamp = Metadata.from_bytes(repo.store.read(TIMESTAMP))
    assert list(timestamp.signatures) == [new_key.keyid]


def test_bin_count_follows_fleet_size() -> None:
    assert 2 ** recommended_bit_length(100_000) == 1024
    assert 2 ** recommended_bit_length(10) == 16
    assert 2 ** recommended_bit_length(10_000_000) == 2048


def test_prune_removes_superseded_versions_after_the_grace_period_but_keeps_roots(
    repo: TufRepository, clock: Clock, offline_keys: OfflineKeys
) -> None:
    name = repo.bin_names[0]
    repo.publish(bins={name: []})
    repo.draft_resign(ROOT)
    sign_staged(repo, ROOT, offline_keys.root[:2])
    repo.publish_staged()
    assert repo.prune_superseded(timedelta(hours=1)) == 0  # still inside the grace period

    clock.now = datetime.now(UTC) + timedelta(hours=2)
    removed = repo.prune_superseded(timedelta(hours=1))
    assert removed >= 2  # 1.bins-0.json and the superseded snapshots
    assert not repo.store.path(name, 1).exists()
    assert repo.store.path(name, 2).exists()
    assert repo.store.path(ROOT, 1).exists() and repo.store.path(ROOT, 2).exists()
    assert repo.store.path(SNAPSHOT, repo.version(SNAPSHOT)).exists()


def test_firmware_changes_wait_for_offline_release_signatures_without_losing_collected_ones(
    tmp_path: Path, clock: Clock, offline_keys: OfflineKeys
) -> None:
    # No release key on the server: the firmware role is staged, not published.
    repository = TufRepository(
        tmp_path / "offline-release",
        OnlineKeyring(tmp_path / "offline-release" / "keys", lambda: PASSPHRASE),
        clock=clock,
    )
    initialise(repository, offline_keys, bit_length=4)
    firmware = {"firmware/acme/gw-os-2.1.0.tar": TargetFile.from_data("firmware/acme/gw-os-2.1.0.tar", b"os")}
    assert repository.publish(firmware=firmware).firmware_staged
    staged = repository.staged("firmware")
    assert staged is not None
    staged.sign(offline_keys.release[0], append=True)
    repository.add_signatures(staged.to_bytes(), "firmware")
    # Publishing again (another gateway's change) must not reset the signatures collected so far.
    repository.publish(firmware=firmware)
    assert repository.signing_status("firmware").complete
    assert repository.publish_staged().offline_roles == ["firmware"]
    assert list(repository.load("firmware").signed.targets) == list(firmware)


def test_a_key_rotation_promoted_by_another_process_is_used_without_restart(
    repo: TufRepository, offline_keys: OfflineKeys, tmp_path: Path, clock: Clock
) -> None:
    # A Celery worker keeps its keyring (and loaded signers) for its lifetime; it opens the
    # repository afresh for each publish, as firmware.repo.get_repository() does.
    worker_keyring = OnlineKeyring(repo.keyring.keys_dir, lambda: PASSPHRASE)
    TufRepository(repo.path, worker_keyring, clock=clock).publish(bins={repo.bin_names[0]: []})
    repo.draft_root(rotate_online=[TIMESTAMP])
    sign_staged(repo, ROOT, offline_keys.root[:2])
    repo.publish_staged()  # the tuf_import process promotes the new key
    TufRepository(repo.path, worker_keyring, clock=clock).publish(bins={repo.bin_names[1]: []})
    timestamp = Metadata.from_bytes(repo.store.read(TIMESTAMP))
    assert list(timestamp.signatures) == [repo.keyring.public_key(TIMESTAMP).keyid]
