"""What one grader process computes once for all the batches it grades (autograder.grade.reuse)."""
import dataclasses

import pytest

from autograder.config import load_assignment
from autograder.grade import grade, reuse
from autograder.grade.grade import Batch
from autograder.testrun import judge_command, judge_env


def _batch(tmp_path, name, data_dir=None):
    folder = tmp_path / name
    folder.mkdir(mode=0o700)
    return Batch(out_dir=folder / "out", tmp=folder, data_dir=data_dir, threads=1, mode="unsafe", key=b"k")


def test_reuse_mnist_cache_is_written_once_per_process_and_again_when_damaged(tmp_path, data_dir, monkeypatch):
    written = []
    real = grade._write_mnist_cache

    def write(folder, data):
        written.append(folder)
        return real(folder, data)

    monkeypatch.setattr(grade, "_write_mnist_cache", write)
    monkeypatch.setattr(reuse, "_MNIST", {})
    first = _batch(tmp_path, "a", data_dir).mnist()
    second = _batch(tmp_path, "b", data_dir).mnist()
    assert first == second and written == [first]
    assert first.stat().st_mode & 0o777 == 0o700 and not first.is_relative_to(tmp_path / "a")  # outlives the batch
    (first / "test-labels.npy").unlink()
    third = _batch(tmp_path, "c", data_dir).mnist()
    assert written == [first, third] and third != first and (third / "test-labels.npy").is_file()


def test_reuse_manifest_is_collected_once_per_fingerprint(tmp_path, monkeypatch):
    collected = []
    real = grade.collect_manifest
    monkeypatch.setattr(grade, "collect_manifest", lambda config: collected.append(config.name) or real(config))
    monkeypatch.setattr(reuse, "_MANIFESTS", {})
    config = load_assignment("im2col")
    first = _batch(tmp_path, "a").manifest(config)
    assert _batch(tmp_path, "b").manifest(config) == first and collected == ["im2col"]
    shorter = dataclasses.replace(config, grading=dataclasses.replace(config.grading, timeout_per_test=7))
    _batch(tmp_path, "c").manifest(shorter)  # what decides a grade changed: collected again
    assert collected == ["im2col", "im2col"]


def test_reuse_kept_folder_serves_the_next_process_and_only_if_private(tmp_path, data_dir, monkeypatch, caplog):
    """``$MNISTKIT_GRADER_CACHE`` (Gradescope's /autograder/cache): what one process prepared, the next
    (here: this one with its memory emptied) reads instead of collecting and writing again; a folder
    others may read or write is not used."""
    collected, written = [], []
    real_collect, real_write = grade.collect_manifest, grade._write_mnist_cache
    monkeypatch.setattr(grade, "collect_manifest",
                        lambda config: collected.append(config.name) or real_collect(config))
    monkeypatch.setattr(grade, "_write_mnist_cache",
                        lambda folder, data: written.append(folder) or real_write(folder, data))
    kept = tmp_path / "kept"
    kept.mkdir(mode=0o700)
    monkeypatch.setenv(reuse.KEPT_ENV, str(kept))
    monkeypatch.setattr(reuse, "_MANIFESTS", {})
    monkeypatch.setattr(reuse, "_MNIST", {})
    grade.prepare("mlp", data_dir=data_dir)
    assert collected == ["mlp"] and len(written) == 1
    config = load_assignment("mlp")
    expected = _batch(tmp_path, "a", data_dir).manifest(config)
    for fresh in ("b", "c"):
        monkeypatch.setattr(reuse, "_MANIFESTS", {})
        monkeypatch.setattr(reuse, "_MNIST", {})
        batch = _batch(tmp_path, fresh, data_dir)
        assert batch.manifest(config) == expected and batch.mnist().is_relative_to(kept)
    assert collected == ["mlp"] and len(written) == 1, "a later process computed again what was kept"
    kept.chmod(0o755)
    monkeypatch.setattr(reuse, "_MANIFESTS", {})
    _batch(tmp_path, "d", data_dir).manifest(config)
    assert collected == ["mlp", "mlp"] and "not a folder of this user's with mode 0700" in caplog.text
    with pytest.raises(grade.UsageError, match="MNISTKIT_GRADER_CACHE"):
        grade.prepare("mlp", data_dir=data_dir)


def test_judge_loads_only_the_plugins_it_names(tmp_path):
    command = judge_command(load_assignment("mlp"))
    env = judge_env(threads=1, home=tmp_path)
    assert env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] == "1"
    named = [command[i + 1] for i, part in enumerate(command) if part == "-p"]
    assert "pytest_timeout" in named and any(part.startswith("--timeout=") for part in command)
