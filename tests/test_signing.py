"""The grader's key signs its results and seeds each submission's probe."""
import stat

from autograder.results.signing import KEY_FILE, file_sha256, load_key, seed_for, sign, verify

RESULTS = {"score": 7.5, "tests": [{"name": "test_a", "score": 2.0}], "extra_data": {"assignment": "mlp"}}


def test_signing_round_trip_verifies(tmp_path):
    key = load_key(tmp_path)
    signed = sign(RESULTS, key)
    assert verify(signed, key)
    assert signed["extra_data"]["assignment"] == "mlp" and "signature" not in RESULTS["extra_data"]
    assert verify(sign(signed, key), key), "signing again replaces the signature"


def test_signing_a_changed_score_fails_verification(tmp_path):
    key = load_key(tmp_path)
    signed = sign(RESULTS, key)
    assert not verify({**signed, "score": 10.0}, key)
    assert not verify({**signed, "tests": [{"name": "test_a", "score": 3.0}]}, key)
    assert not verify({**signed, "extra_data": {**signed["extra_data"], "assignment": "cnn"}}, key)
    assert not verify(signed, bytes(32)), "another key"
    assert not verify(RESULTS, key) and not verify({"extra_data": {"signature": 3}}, key) and not verify([], key)


def test_signing_key_is_created_once_and_private(tmp_path):
    key = load_key(tmp_path)
    assert len(key) == 32 and load_key(tmp_path) == key
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    assert load_key(tmp_path / ".." / tmp_path.name) == key


def test_signing_seed_for_is_stable_per_key_and_differs_across_keys(tmp_path):
    (tmp_path / "other").mkdir()
    key, other = load_key(tmp_path), load_key(tmp_path / "other")
    digest = "ab" * 32
    assert seed_for(key, digest) == seed_for(key, digest)
    assert seed_for(key, digest) != seed_for(other, digest)
    assert seed_for(key, digest) != seed_for(key, "cd" * 32)
    assert 0 <= seed_for(key, digest) < 2**63


def test_signing_file_sha256(tmp_path):
    import hashlib

    (tmp_path / "a.zip").write_bytes(b"zip" * 1000)
    assert file_sha256(tmp_path / "a.zip") == hashlib.sha256(b"zip" * 1000).hexdigest()
