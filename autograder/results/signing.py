"""The grader's key: it signs the results it writes, and seeds each submission's probe.

The key lives in the output folder (``.grader-key``, mode 0600) and never enters a sandbox. A stored
``results.json`` is kept on a re-run only if its signature verifies, so a file written by anyone else
(a process that outlived its run, a student with access to the folder) is graded again, never trusted.
The same key turns a zip's hash into the seed of its probe's inputs: unknown until the zip is graded,
the same every time it is graded into this folder.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

KEY_FILE = ".grader-key"
SIGNATURE = "signature"


def load_key(out_dir: Path) -> bytes:
    """The key of ``out_dir``, created on first use."""
    path = Path(out_dir) / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = bytes.fromhex(path.read_text().strip())
        if len(key) < 32:
            raise ValueError(f"{path} does not hold a grader key")
        return key
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    return key


def _canonical(results: dict) -> bytes:
    body = {k: v for k, v in results.items() if k != "extra_data"}
    extra = {k: v for k, v in results.get("extra_data", {}).items() if k != SIGNATURE}
    return json.dumps({**body, "extra_data": extra}, sort_keys=True, separators=(",", ":")).encode()


def sign(results: dict, key: bytes) -> dict:
    """``results`` with ``extra_data.signature`` set (HMAC-SHA256 of everything else)."""
    signature = hmac.new(key, _canonical(results), hashlib.sha256).hexdigest()
    return {**results, "extra_data": {**results.get("extra_data", {}), SIGNATURE: signature}}


def verify(results: dict, key: bytes) -> bool:
    try:
        claimed = results["extra_data"][SIGNATURE]
        expected = hmac.new(key, _canonical(results), hashlib.sha256).hexdigest()
    except (KeyError, TypeError, AttributeError, ValueError):
        return False
    return isinstance(claimed, str) and hmac.compare_digest(claimed, expected)


def seed_for(key: bytes, zip_sha256: str) -> int:
    """A 63-bit seed for a submission's probe, from the grader's key and the zip's hash."""
    digest = hmac.new(key, f"probe-seed:{zip_sha256}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
