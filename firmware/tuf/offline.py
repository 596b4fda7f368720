"""Offline signing tool: runs on the machine that holds root, targets or release keys.

It needs only python-tuf and securesystemslib (no Django, no server access):

    python -m firmware.tuf.offline keygen /media/keys/root-1.pem
    python -m firmware.tuf.offline show 2.root.json
    python -m firmware.tuf.offline sign 2.root.json --key /media/keys/root-1.pem

The passphrase is read from $GRIDFLEET_KEY_PASSPHRASE or asked for. `sign` appends the
signature (threshold signing: several people sign copies, the server merges them on import).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from pathlib import Path

from tuf.api.metadata import Metadata
from tuf.api.serialization.json import JSONSerializer

from .keys import generate_key_file, load_file_signer, public_path


def _passphrase(confirm: bool = False) -> str:
    if env := os.environ.get("GRIDFLEET_KEY_PASSPHRASE"):
        return env
    value = getpass.getpass("Key passphrase: ")
    if confirm and getpass.getpass("Repeat passphrase: ") != value:
        raise SystemExit("passphrases differ")
    return value


def keygen(args: argparse.Namespace) -> int:
    key = generate_key_file(Path(args.path), _passphrase(confirm=True))
    print(f"keyid {key.keyid}\npublic key {public_path(Path(args.path))}")
    return 0


def show(args: argparse.Namespace) -> int:
    md = Metadata.from_file(args.file)
    signed = md.signed.to_dict()
    print(json.dumps(signed, indent=2, sort_keys=True))
    print(f"signatures by: {', '.join(md.signatures) or '(none)'}", file=sys.stderr)
    return 0


def sign(args: argparse.Namespace) -> int:
    md = Metadata.from_file(args.file)
    signer = load_file_signer(Path(args.key), _passphrase())
    md.sign(signer, append=True)
    Path(args.file).write_bytes(md.to_bytes(JSONSerializer()))
    print(f"signed {args.file} ({md.signed.type} v{md.signed.version}) with {signer.public_key.keyid}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware.tuf.offline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True)
    p = sub.add_parser("keygen", help="create an encrypted ed25519 key file and its .pub.json")
    p.add_argument("path")
    p.set_defaults(func=keygen)
    p = sub.add_parser("show", help="print the signed part of a metadata file")
    p.add_argument("file")
    p.set_defaults(func=show)
    p = sub.add_parser("sign", help="append a signature to a metadata file")
    p.add_argument("file")
    p.add_argument("--key", required=True, help="encrypted key file made by keygen")
    p.set_defaults(func=sign)
    args = parser.parse_args(argv)
    # python-tuf reports every key that has not signed yet at INFO ("No signature for keyid"):
    # normal while signatures are being collected, noise in a ceremony's output.
    logging.getLogger("tuf").setLevel(logging.WARNING)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
