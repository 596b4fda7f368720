"""The ``gridfleet-agent`` command line."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gridfleet_agent import tuf_client


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "tuf-client":
        # Its option layout is fixed by the TUF client-test interface, so it owns its own parser.
        return tuf_client.main(args[1:])
    print("usage: gridfleet-agent {tuf-client} ...", file=sys.stderr)
    return 2
