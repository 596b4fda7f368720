"""The ``gridfleet-agent tuf-client`` command, driven through the TUF client-test interface."""

from __future__ import annotations

import functools
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from gridfleet_agent import tuf_client as client
from gridfleet_agent.cli import main
from gridfleet_agent.fetcher import AgentFetcher
from tuf.api.exceptions import LengthOrHashMismatchError

from .tuf_repository import RepositoryServer, TufRepository

FIRMWARE = "firmware/gw-1000/gridfleet-os-2.1.0.tar"


def tuf_client(*args: str) -> int:
    return main(["tuf-client", *args])


@pytest.fixture
def metadata_dir(tmp_path: Path, tuf_repository: TufRepository) -> Path:
    directory = tmp_path / "metadata"
    root_file = tmp_path / "trusted-root.json.bin"
    root_file.write_bytes(tuf_repository.trusted_root)
    assert tuf_client("--metadata-dir", str(directory), "init", str(root_file)) == 0
    return directory


def refresh(metadata_dir: Path, server: RepositoryServer) -> int:
    return tuf_client("--metadata-dir", str(metadata_dir), "--metadata-url", server.metadata_url, "refresh")


def download(metadata_dir: Path, server: RepositoryServer, target_dir: Path, *names: str) -> int:
    name_args = [arg for name in names for arg in ("--target-name", name)]
    return tuf_client(
        "--metadata-dir",
        str(metadata_dir),
        "--metadata-url",
        server.metadata_url,
        *name_args,
        "--target-base-url",
        server.targets_url,
        "--target-dir",
        str(target_dir),
        "download",
    )


def test_init_stores_the_trusted_root_without_network(metadata_dir: Path, tuf_repository: TufRepository):
    assert (metadata_dir / "root.json").read_bytes() == tuf_repository.trusted_root
    assert sorted(p.name for p in metadata_dir.iterdir()) == ["root.json"]


def test_init_refuses_a_file_that_is_not_root_metadata(tmp_path: Path):
    bogus = tmp_path / "root.bin"
    bogus.write_bytes(b'{"signed": {"_type": "targets"}}')
    assert tuf_client("--metadata-dir", str(tmp_path / "md"), "init", str(bogus)) == 1


def test_refresh_stores_all_top_level_roles(metadata_dir: Path, tuf_server: RepositoryServer):
    assert refresh(metadata_dir, tuf_server) == 0
    roles = {p.name for p in metadata_dir.glob("*.json")}
    assert roles == {"root.json", "timestamp.json", "snapshot.json", "targets.json"}


def test_refresh_follows_a_root_rotation(
    metadata_dir: Path, tuf_repository: TufRepository, tuf_server: RepositoryServer
):
    tuf_repository.rotate_timestamp_key()
    tuf_repository.publish()
    assert refresh(metadata_dir, tuf_server) == 0
    assert b'"version":2' in (metadata_dir / "root.json").read_bytes()


def test_download_writes_verified_targets_in_order(
    tmp_path: Path, metadata_dir: Path, tuf_repository: TufRepository, tuf_server: RepositoryServer
):
    tuf_repository.add_target(FIRMWARE, b"firmware image")
    tuf_repository.add_target("devices/abc/assignment.json", b'{"firmware": "2.1.0"}')
    tuf_repository.publish()
    targets = tmp_path / "targets"

    assert download(metadata_dir, tuf_server, targets, FIRMWARE, "devices/abc/assignment.json") == 0

    assert (targets / quote(FIRMWARE, "")).read_bytes() == b"firmware image"
    assert (targets / quote("devices/abc/assignment.json", "")).read_bytes() == b'{"firmware": "2.1.0"}'


def test_cached_target_is_not_downloaded_again(
    tmp_path: Path, metadata_dir: Path, tuf_repository: TufRepository, tuf_server: RepositoryServer
):
    tuf_repository.add_target(FIRMWARE, b"firmware image")
    tuf_repository.publish()
    targets = tmp_path / "targets"

    assert download(metadata_dir, tuf_server, targets, FIRMWARE) == 0
    assert download(metadata_dir, tuf_server, targets, FIRMWARE) == 0

    assert tuf_server.requests[tuf_repository.target_url_path(FIRMWARE)] == 1


def test_tampered_target_is_refused_and_not_written(
    tmp_path: Path, metadata_dir: Path, tuf_repository: TufRepository, tuf_server: RepositoryServer
):
    tuf_repository.add_target(FIRMWARE, b"firmware image")
    tuf_repository.publish()
    tuf_repository.files[tuf_repository.target_url_path(FIRMWARE)] = b"firmware imagE"
    targets = tmp_path / "targets"

    assert download(metadata_dir, tuf_server, targets, FIRMWARE) == 1

    assert not (targets / quote(FIRMWARE, "")).exists()


def test_unknown_target_fails(tmp_path: Path, metadata_dir: Path, tuf_server: RepositoryServer):
    assert download(metadata_dir, tuf_server, tmp_path / "targets", "firmware/none/missing.tar") == 1


def test_expired_timestamp_is_refused(metadata_dir: Path, tuf_repository: TufRepository, tuf_server: RepositoryServer):
    tuf_repository.publish(timestamp_expires=datetime.now(UTC) - timedelta(minutes=1))
    assert refresh(metadata_dir, tuf_server) == 1


def test_rolled_back_snapshot_is_refused(
    metadata_dir: Path, tuf_repository: TufRepository, tuf_server: RepositoryServer
):
    tuf_repository.publish()
    assert refresh(metadata_dir, tuf_server) == 0
    trusted_snapshot = (metadata_dir / "snapshot.json").read_bytes()

    # An attacker replays an older snapshot version under a freshly signed timestamp.
    tuf_repository.snapshot.signed.version -= 1
    tuf_repository.publish_snapshot_as_is()

    assert refresh(metadata_dir, tuf_server) == 1
    assert (metadata_dir / "snapshot.json").read_bytes() == trusted_snapshot


def test_metadata_signed_by_an_untrusted_key_is_refused(
    metadata_dir: Path, tuf_repository: TufRepository, tuf_server: RepositoryServer
):
    from securesystemslib.signer import CryptoSigner

    tuf_repository.signers["timestamp"] = CryptoSigner.generate_ecdsa()  # key not listed in root
    tuf_repository.publish()
    assert refresh(metadata_dir, tuf_server) == 1


def test_interrupted_target_download_resumes_with_a_range_request(
    tmp_path: Path, metadata_dir: Path, tuf_repository: TufRepository, tuf_server: RepositoryServer
):
    image = bytes(range(256)) * 4096
    tuf_repository.add_target(FIRMWARE, image)
    tuf_repository.publish()
    url_path = tuf_repository.target_url_path(FIRMWARE)
    tuf_server.truncate_once.add(url_path)

    assert download(metadata_dir, tuf_server, tmp_path / "targets", FIRMWARE) == 0

    assert (tmp_path / "targets" / quote(FIRMWARE, "")).read_bytes() == image
    assert tuf_server.range_requests == [(url_path, f"bytes={len(image) // 2}-")]


def test_console_script_reports_failure_with_exit_status_1(tmp_path: Path):
    result = subprocess.run(
        [
            Path(sys.executable).parent / "gridfleet-agent",
            "tuf-client",
            "--metadata-dir",
            str(tmp_path),
            "--metadata-url",
            "http://127.0.0.1:9/metadata/",
            "refresh",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "no trusted root.json" in result.stderr


def partial_download_setup(tmp_path: Path, metadata_dir: Path, repo: TufRepository, server: RepositoryServer):
    image = bytes(range(256)) * 2048
    info_path = FIRMWARE
    repo.add_target(info_path, image)
    repo.publish()
    updater = client.open_updater(metadata_dir, server.metadata_url)
    client.refresh(updater)
    info = updater.get_targetinfo(info_path)
    assert info is not None
    targets = tmp_path / "targets"
    partial = targets / ".partial" / f"{info.hashes['sha256']}.{quote(info_path, '')}"
    partial.parent.mkdir(parents=True)
    download = functools.partial(
        client.download_resumable,
        info,
        target_base_url=server.targets_url,
        target_dir=targets,
        fetcher=AgentFetcher(),
        consistent_snapshot=True,
    )
    return image, partial, download


def test_download_kept_across_a_restart_continues_where_it_stopped(
    tmp_path: Path, metadata_dir: Path, tuf_repository: TufRepository, tuf_server: RepositoryServer
):
    image, partial, download = partial_download_setup(tmp_path, metadata_dir, tuf_repository, tuf_server)
    partial.write_bytes(image[:200_000])  # what a previous run got before the power cut

    path = download()

    assert path.read_bytes() == image
    assert not partial.exists()
    assert tuf_server.range_requests == [(tuf_repository.target_url_path(FIRMWARE), "bytes=200000-")]


def test_a_corrupt_partial_download_is_discarded_and_never_used(
    tmp_path: Path, metadata_dir: Path, tuf_repository: TufRepository, tuf_server: RepositoryServer
):
    image, partial, download = partial_download_setup(tmp_path, metadata_dir, tuf_repository, tuf_server)
    partial.write_bytes(b"\0" * 200_000)

    with pytest.raises(LengthOrHashMismatchError):
        download()
    assert not partial.exists()

    assert download().read_bytes() == image
