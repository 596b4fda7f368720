"""Benchmark: uplink batch ingest (fleet.uplink.services.ingest_batch) on PostgreSQL or SQLite.

Many gateways each send batches of `--batch` records (default 500: the protocol maximum), a mix of
telemetry (12 points each), logs and a few alarm raises/clears, exactly as the consumer hands them
to the service: parsed and validated first (fleet.uplink.protocol), then one transaction per batch.
Prints records/s and rows/s for parsing and for ingest, and the cost of a resent batch (all
duplicates). On PostgreSQL the log and telemetry tables are the daily partitions of migration 0002.

    .venv/bin/python bench/uplink_ingest.py [--gateways 50] [--batches 20] [--batch 500]
                                            [--database-url postgres://...|sqlite]

With a PostgreSQL URL the database `<name>_uplink_bench` is dropped and recreated; `sqlite` uses a
temporary file. Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/test"
POINTS = ["W", "VA", "VAr", "PF", "Hz", "A", "PhVphA", "WH", "St", "TmpCab", "DCW", "DCV"]


def fresh_database(url: str) -> str:
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'postgres'}_uplink_bench"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def make_batch(first_seq: int, size: int, start: datetime, rng: random.Random) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for i in range(size):
        seq = first_seq + i
        ts = (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        roll = rng.random()
        if roll < 0.85:
            points = {p: round(rng.uniform(0, 5000), 2) for p in POINTS}
            records.append(
                {"seq": seq, "kind": "telemetry", "ts": ts, "payload": {"device": "INV-1", "points": points}}
            )
        elif roll < 0.99:
            records.append(
                {
                    "seq": seq,
                    "kind": "log",
                    "ts": ts,
                    "payload": {"level": "info", "logger": "bench", "message": f"poll {seq} ok"},
                }
            )
        else:
            records.append(
                {
                    "seq": seq,
                    "kind": "alarm",
                    "ts": ts,
                    "payload": {
                        "source": "device:INV-1",
                        "device": "INV-1",
                        "code": "sunspec.evt1.over_temperature",
                        "severity": "major",
                        "state": rng.choice(["raised", "cleared"]),
                        "message": "bench",
                    },
                }
            )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gateways", type=int, default=50)
    parser.add_argument("--batches", type=int, default=20, help="batches per gateway")
    parser.add_argument("--batch", type=int, default=500, help="records per batch")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()

    var_dir = tempfile.mkdtemp(prefix="bench-uplink-")
    if args.database_url == "sqlite":
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = fresh_database(args.database_url)
    os.environ["GRIDFLEET_VAR_DIR"] = var_dir
    os.environ.pop("REDIS_URL", None)
    os.environ["GRIDFLEET_INPROCESS_SCHEDULER"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
    import django

    django.setup()
    import logging

    logging.disable(logging.WARNING)
    from django.core.management import call_command
    from django.db import connection

    from fleet.inventory.models import Gateway, Organization, Site
    from fleet.monitoring.models import LogEntry, TelemetrySample
    from fleet.uplink import services
    from fleet.uplink.protocol import Hello, parse_records

    call_command("migrate", verbosity=0)
    org = Organization.objects.create(name="Bench Solar", slug="bench")
    site = Site.objects.create(organization=org, name="Bench site")
    gateways = Gateway.objects.bulk_create(
        [
            Gateway(organization=org, site=site, serial=f"BENCH-{i:05d}", hardware_model="GF-100", status="active")
            for i in range(args.gateways)
        ]
    )
    for gateway in gateways:
        services.open_stream(
            gateway=gateway, hello=Hello(protocol=1, agent_version="bench", stream="q", last_acked_seq=0)
        )

    rng = random.Random(7)
    now = datetime.now(UTC)
    total_records = args.gateways * args.batches * args.batch
    print(
        f"{connection.vendor}: {args.gateways} gateways x {args.batches} batches x {args.batch} records "
        f"= {total_records:,} records"
    )
    parse_s = ingest_s = 0.0
    sample_batch: tuple[Any, Any] | None = None
    for b in range(args.batches):
        for gateway in gateways:
            raw = make_batch(b * args.batch + 1, args.batch, now - timedelta(minutes=30) + timedelta(seconds=b), rng)
            start = time.perf_counter()
            parsed = parse_records(raw, now=now)
            parse_s += time.perf_counter() - start
            start = time.perf_counter()
            services.ingest_batch(gateway=gateway, stream="q", parsed=parsed, now=now)
            ingest_s += time.perf_counter() - start
            sample_batch = (gateway, parsed)
    rows = LogEntry.objects.count() + TelemetrySample.objects.count()
    print(f"  parse + validate   {parse_s:8.2f} s  {total_records / parse_s:10,.0f} records/s")
    print(
        f"  ingest (commit)    {ingest_s:8.2f} s  {total_records / ingest_s:10,.0f} records/s  "
        f"{rows / ingest_s:10,.0f} rows/s ({rows:,} log + telemetry rows)"
    )
    assert sample_batch is not None
    gateway, parsed = sample_batch
    start = time.perf_counter()
    result = services.ingest_batch(gateway=gateway, stream="q", parsed=parsed, now=now)
    resend_ms = (time.perf_counter() - start) * 1000
    print(f"  resent batch       {resend_ms:8.1f} ms ({result.duplicates} duplicates, {result.stored} stored)")


if __name__ == "__main__":
    main()
