"""Benchmark: the server's publishing path (Django services + database + TUF), not just the core.

Creates a fresh var directory and database (SQLite, or DATABASE_URL if set), N gateways, uploads
one firmware artifact, assigns it to every gateway with `assign_many` (one assignment document
and bin entry per gateway), publishes, then times one gateway's change end to end:

    .venv/bin/python bench/tuf_server.py [--gateways 100000]

Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=100_000)
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="tuf-server-bench-"))
    os.environ["GRIDFLEET_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from firmware import bundles, services
    from firmware.models import DeviceTarget
    from firmware.repo import get_repository
    from fleet.inventory.models import Gateway, Organization, Site

    call_command("migrate", verbosity=0)
    if connection.vendor == "postgresql":
        call_command("flush", interactive=False, verbosity=0)
    call_command(
        "tuf_init", dev_offline_keys=str(var_dir / "offline"), expected_gateways=args.gateways, stdout=io.StringIO()
    )
    organization = Organization.objects.create(name="Bench", slug="bench")
    site = Site.objects.create(organization=organization, name="Bench site")
    Gateway.objects.bulk_create(
        [
            Gateway(organization=organization, site=site, serial=f"BENCH-{i:07d}", hardware_model="GF-100")
            for i in range(args.gateways)
        ],
        batch_size=5000,
    )
    gateways = list(Gateway.objects.filter(organization=organization).order_by("pk"))
    bundle = bundles.build_bundle(
        type="firmware", name="gw-os", version="2.1.0", files={"rootfs.img": b"x" * 4096}, hardware_models=["GF-100"]
    )

    def artifact(version: str) -> object:
        data = bundle.replace(b"2.1.0", version.encode())
        return services.upload_artifact(
            organization=organization,
            type="firmware",
            name="gw-os",
            version=version,
            fileobj=io.BytesIO(data),
            actor=None,
        )

    first = artifact("2.1.0")
    services.publish()

    t0 = time.perf_counter()
    services.assign_many(gateways=gateways, artifact=first, deployment="bench")  # publishes on commit
    assign_all_seconds = time.perf_counter() - t0

    second = artifact("2.1.1")
    services.publish()
    t0 = time.perf_counter()
    services.assign(gateway=gateways[0], artifact_type="firmware", artifact=second)  # publishes on commit
    assign_one_seconds = time.perf_counter() - t0

    repo = get_repository()
    print(f"{'gateways':<34}{args.gateways:,} ({connection.vendor}), {len(repo.bin_names)} bins")
    print(f"{'device targets':<34}{DeviceTarget.objects.count():,}")
    print(
        f"{'assign_many to all + publish':<34}{assign_all_seconds:.1f} s "
        f"({args.gateways / assign_all_seconds:,.0f} gateways/s)"
    )
    print(f"{'assign one gateway + publish':<34}{assign_one_seconds * 1000:.0f} ms")


if __name__ == "__main__":
    main()
