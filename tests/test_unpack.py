"""A submission zip is read defensively: junk, nesting, traversal, links and bombs."""
import stat
import zipfile
from pathlib import Path

import pytest

from autograder.grade.unpack import SubmissionError, extract_submission, suggest

WANTED = ("mlp.py", "mnist_agent.pt")


def _zip(path, entries):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def _extract(tmp_path, zip_path, cap=2**20):
    dest = tmp_path / "out"
    dest.mkdir()
    return extract_submission(zip_path, dest, wanted=WANTED, max_file_bytes=cap)


def test_unpack_rejects_a_file_that_is_not_a_zip(tmp_path):
    bogus = tmp_path / "s.zip"
    bogus.write_text("this is not a zip")
    with pytest.raises(SubmissionError, match="not a valid zip"):
        _extract(tmp_path, bogus)


def test_unpack_empty_zip_reports_every_file_missing(tmp_path):
    result = _extract(tmp_path, _zip(tmp_path / "s.zip", {}))
    assert result.files == {} and result.missing(WANTED) == list(WANTED)


def test_unpack_finds_files_one_folder_deep_and_skips_macos_junk(tmp_path):
    result = _extract(tmp_path, _zip(tmp_path / "s.zip", {
        "hw/mlp.py": "x = 1\n", "__MACOSX/hw/._mlp.py": "junk", "hw/.DS_Store": "junk",
    }))
    assert result.files["mlp.py"].read_text() == "x = 1\n"
    assert any("put it at the top level" in n for n in result.notes)


def test_unpack_never_writes_outside_its_folder(tmp_path):
    result = _extract(tmp_path, _zip(tmp_path / "s.zip", {"../mlp.py": "evil", "/abs/mnist_agent.pt": "evil"}))
    assert result.files == {}
    assert not (tmp_path / "mlp.py").exists()
    assert sum("not allowed" in n for n in result.notes) == 2


def test_unpack_ignores_symlinks(tmp_path):
    path = tmp_path / "s.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("mlp.py")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    result = _extract(tmp_path, path)
    assert result.files == {} and any("symbolic links" in n for n in result.notes)


def test_unpack_stops_a_zip_bomb_at_the_cap(tmp_path):
    bomb = _zip(tmp_path / "s.zip", {"mnist_agent.pt": b"\0" * (8 * 2**20)})
    result = _extract(tmp_path, bomb, cap=2**20)
    assert "mnist_agent.pt" not in result.files and any("limit" in n for n in result.notes)
    assert not (tmp_path / "out" / "mnist_agent.pt").exists()


def test_unpack_suggests_the_right_name():
    assert "rename it to mlp.py" in suggest("mlp.py", ["MLP.py"])
    assert "rename it to mlp.py" in suggest("mlp.py", ["folder/mlp (1).py"])
    assert suggest("mlp.py", ["readme.txt"]) == ""


def test_submission_names_keep_a_zip_and_a_notebook_of_one_student_apart(tmp_path):
    from autograder.grade.grade import submission_names

    paths = [tmp_path / "alice.zip", tmp_path / "alice.ipynb", tmp_path / "bob smith.zip"]
    assert submission_names(paths) == {paths[0]: "alice.zip", paths[1]: "alice.ipynb", paths[2]: "bob_smith"}


def test_batch_starts_the_longest_assignments_first_and_the_largest_zip_within_one(tmp_path):
    from autograder.config import load_assignment
    from autograder.grade.grade import Batch, longest_first

    def submission(name: str, assignment: str, padding: int = 0) -> Path:
        stubs = load_assignment(assignment).handout.stubs
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            for stub in stubs:
                archive.writestr(stub, "x" * padding)
        return tmp_path / name

    sources = [submission("a-im2col.zip", "im2col"), submission("b-mlp-small.zip", "mlp"),
               submission("c-mlp-large.zip", "mlp", padding=5000), submission("d-vgg.zip", "vgg"),
               tmp_path / "e-unknown.zip"]
    sources[-1].write_bytes(b"not a zip")
    batch = Batch(tmp_path / "out", tmp_path, None, 1, "bwrap", b"k" * 32)
    order = [p.name for p in longest_first(sources, batch)]
    assert load_assignment("vgg").grading.timeout_total > load_assignment("mlp").grading.timeout_total
    assert order[0] == "d-vgg.zip" and order[-1] == "e-unknown.zip"
    assert order.index("c-mlp-large.zip") < order.index("b-mlp-small.zip")
