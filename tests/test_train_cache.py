"""The grader's cache of trained predictions: per batch, or one folder the grader's environment names."""
from autograder.grade.grade import TRAIN_CACHE_ENV, Batch


def _batch(tmp_path):
    (tmp_path / "tmp").mkdir(mode=0o700)
    return Batch(out_dir=tmp_path / "out", tmp=tmp_path / "tmp", data_dir=None, threads=1, mode="unsafe", key=b"k")


def test_train_cache_is_the_batchs_own_folder_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv(TRAIN_CACHE_ENV, raising=False)
    folder = _batch(tmp_path).train_cache()
    assert folder == tmp_path / "tmp" / "trained" and folder.stat().st_mode & 0o777 == 0o700


def test_train_cache_shared_folder_is_used_only_when_closed_to_others(tmp_path, monkeypatch, caplog):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    shared.chmod(0o700)
    monkeypatch.setenv(TRAIN_CACHE_ENV, str(shared))
    assert _batch(tmp_path).train_cache() == shared
    shared.chmod(0o755)  # others could read (or, with 0o777, plant) predictions: refused
    other = tmp_path / "second"
    other.mkdir()
    assert _batch(other).train_cache() == other / "tmp" / "trained"
    assert "is not a folder of this user's with mode 0700" in caplog.text
