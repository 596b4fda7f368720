"""Benchmark: plan a deployment over a large fleet (default 100k gateways) on PostgreSQL.

Runs the server's own code (firmware.deployments.services, firmware.services) against a fresh
database on the given PostgreSQL server and prints, for each step, the time and the ratio to a
bulk COPY of the same rows into a table of the same shape:

  1. plan: compatibility check, phase split, one GatewayAction per gateway, exclusions, supersede
     check, first phase started (`create_deployment`);
  2. dispatch: the first phase's assignments (the 1% canary; every gateway with --single-phase)
     written through `firmware.services.assign_many` (assignments, one assignment document per
     gateway, device targets, pending bins, audit) and the actions' new state, by one
     `run_rollouts` tick;
  3. publish: the touched hash bins re-signed, then snapshot and timestamp (`firmware.services.publish`);

    .venv/bin/python bench/deployments_plan.py [--gateways 100000] [--database-url postgres://...]

The database `<name>_deployments_bench` is dropped and recreated on that server. Prints figures;
it is not a test.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/test"


def fresh_database(url: str) -> str:
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'postgres'}_deployments_bench"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def timed(label: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    print(f"  {label:<58} {elapsed:8.2f} s", flush=True)
    return result, elapsed


def copy_seconds(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> float:
    """Bulk COPY of the rows into an empty temporary table shaped like `table` (indexes included)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE bench_copy (LIKE {table} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES) "
            "ON COMMIT DROP"
        )
        raw = cursor.cursor  # psycopg 3
        start = time.perf_counter()
        with raw.copy(f"COPY bench_copy ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=100_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument(
        "--single-phase", action="store_true", help="one 100%% phase, so the first tick assigns every gateway"
    )
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = fresh_database(args.database_url)
    os.environ["GRIDFLEET_VAR_DIR"] = tempfile.mkdtemp(prefix="bench-deployments-")
    # Publishing runs where the worker would run it: once, below, not after every commit.
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
    os.environ["GRIDFLEET_INPROCESS_SCHEDULER"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
    import django

    django.setup()
    import logging

    logging.disable(logging.WARNING)

    from django.core.management import call_command
    from django.db import connection

    from firmware import bundles
    from firmware import services as firmware
    from firmware.deployments import services
    from firmware.deployments.models import GatewayAction
    from firmware.deployments.plans import PhaseSpec, RolloutPlan, TargetSpec
    from firmware.models import Assignment
    from fleet.inventory.models import Gateway, GatewayGroup, Organization, Site

    n = args.gateways
    print(f"Deployment over {n:,} gateways, PostgreSQL {connection.settings_dict['NAME']}")
    print("Setup (not measured against COPY):")
    timed("migrate", lambda: call_command("migrate", verbosity=0))
    keys = Path(os.environ["GRIDFLEET_VAR_DIR"]) / "offline"
    timed(
        "tuf_init",
        lambda: call_command(
            "tuf_init", "--dev-offline-keys", str(keys), "--expected-gateways", str(n), stdout=io.StringIO()
        ),
    )
    org = Organization.objects.create(name="Bench Solar", slug="bench")
    sites = Site.objects.bulk_create(
        [
            Site(
                organization=org,
                name=f"Site {i}",
                latitude=36.7 + i / 1000,
                longitude=-119.8,
                timezone="America/Los_Angeles",
            )
            for i in range(100)
        ]
    )
    incompatible_every = 50  # 2% of the fleet runs a hardware model the firmware does not support

    def make_gateways() -> None:
        Gateway.objects.bulk_create(
            (
                Gateway(
                    organization=org,
                    site=sites[i % len(sites)],
                    serial=f"GW-{i:07d}",
                    status="active",
                    hardware_model="GX-900" if i % incompatible_every == 0 else "GF-100",
                    firmware_version="1.0.0",
                )
                for i in range(n)
            ),
            batch_size=5000,
        )

    timed(f"{n:,} gateways (bulk_create)", make_gateways)
    group = GatewayGroup.objects.create(organization=org, name="all", kind="dynamic", filter={"status": ["active"]})
    data = bundles.build_bundle(
        type="firmware", name="gw-os", version="2.0.0", files={"rootfs.img": b"x" * 4096}, hardware_models=["GF-100"]
    )
    artifact = firmware.upload_artifact(
        organization=org, type="firmware", name="gw-os", version="2.0.0", fileobj=io.BytesIO(data), actor=None
    )
    timed("release the artifact (publish firmware role)", firmware.publish)

    now = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
    phases = (
        (PhaseSpec("all", percent=100),)
        if args.single_phase
        else (
            PhaseSpec("canary", percent=1, min_soak=timedelta(hours=1)),
            PhaseSpec("early", percent=10),
            PhaseSpec("half", percent=50),
            PhaseSpec("all", percent=100),
        )
    )
    plan = RolloutPlan(
        phases=phases,
        jitter_seconds=0,
        window_start=clock_time(1),
        window_end=clock_time(4),
    )

    print("Measured:")
    deployment, plan_s = timed(
        "1. plan (create_deployment)",
        lambda: services.create_deployment(
            organization=org,
            name="gw-os 2.0.0",
            artifacts=[artifact],
            target=TargetSpec(kind="group", group=group),
            plan=plan,
            actor=None,
            now=now,
        ),
    )
    actions = GatewayAction.objects.filter(deployment=deployment)
    action_rows = actions.count()
    excluded = deployment.exclusions.count()
    columns = [
        "deployment_id",
        "phase_id",
        "gateway_id",
        "artifact_id",
        "state",
        "attempt",
        "not_before",
        "state_changed",
        "cancel_requested",
        "failure_code",
        "failure_message",
        "log_excerpt",
        "jitter",
    ]
    rows = list(actions.values_list(*columns))
    copy_plan = copy_seconds(GatewayAction._meta.db_table, columns, rows)
    print(
        f"     {action_rows:,} actions + {excluded:,} exclusions; COPY of the same action rows "
        f"{copy_plan:.2f} s -> ratio {plan_s / copy_plan:.1f}x"
    )

    def dispatch() -> int:
        return services.run_rollouts(now=now)["assigned"]

    assigned, dispatch_s = timed("2. first phase assigned (one run_rollouts tick)", dispatch)
    assignment_columns = ["gateway_id", "artifact_type", "artifact_id", "deployment", "install", "updated"]
    assignment_rows = list(Assignment.objects.values_list(*assignment_columns))
    from psycopg.types.json import Jsonb

    copy_assign = copy_seconds(
        Assignment._meta.db_table, assignment_columns, [(*r[:4], Jsonb(r[4]), r[5]) for r in assignment_rows]
    )
    print(
        f"     {assigned:,} gateways assigned, {assigned / dispatch_s:,.0f}/s; COPY of the same assignment "
        f"rows {copy_assign * 1000:.1f} ms -> ratio {dispatch_s / copy_assign:.0f}x"
    )
    result, publish_s = timed("3. publish (re-sign touched bins, snapshot, timestamp)", firmware.publish)
    print(f"     {len(result.bins) if result else 0} bins re-signed")
    total = plan_s + dispatch_s + publish_s
    print(
        f"Total plan + first phase + publish: {total:.2f} s; all {action_rows:,} gateways at the measured "
        f"assignment rate: {action_rows / (assigned / dispatch_s) / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
