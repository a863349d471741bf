"""``edgeport sign``: sign a bundle with a private key (OpenSSF model-signing format, runtime/signing.py)."""

from __future__ import annotations

import click

from edgeport.cli.options import common_options, json_option, out, out_envelope


@click.command()
@click.argument("bundle", type=click.Path(path_type=str))
@click.option("--key", "private_key", required=True, type=click.Path(path_type=str), metavar="PRIVATE.pem",
              help="Elliptic-curve private key in PEM (e.g. openssl ecparam -genkey -name prime256v1 -noout).")
@json_option
@common_options
def sign(bundle, private_key, as_json):
    """Sign BUNDLE: write BUNDLE/bundle.sig covering every file but what the device writes later.

    \b
    Devices then read it with --trusted-key PUBLIC.pem (or EDGEPORT_TRUSTED_KEYS) and refuse it
    when it is unsigned, signed by another key, or changed. OpenSSF's own tool verifies it too:
    model_signing verify key BUNDLE --signature BUNDLE/bundle.sig --public_key PUBLIC.pem --ignore_unsigned_files
    """
    from edgeport.api import sign as run_sign

    signature = run_sign(bundle, private_key)
    if as_json:
        out_envelope({"signature": str(signature)}, bundle=signature.parent)
    else:
        out(f"signed: {signature}")
