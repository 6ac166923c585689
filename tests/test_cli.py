import pytest

from autograder.cli import EXIT_USAGE, main
from mnistkit.data import MNISTUnavailableError, load_mnist


def test_cli_grade_bad_path_is_misuse(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nope.zip"), "--out", str(tmp_path / "out")]) == EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err


def test_cli_grade_folder_without_zips_is_misuse(tmp_path, capsys):
    assert main(["grade", str(tmp_path), "--out", str(tmp_path / "out")]) == EXIT_USAGE
    assert "holds no .zip or .ipynb files" in capsys.readouterr().err


def test_cli_grade_unknown_assignment_is_misuse(tmp_path, capsys):
    (tmp_path / "a.zip").write_bytes(b"")
    assert main(["grade", str(tmp_path), "--out", str(tmp_path / "out"), "--assignment", "nope"]) == EXIT_USAGE
    assert "unknown assignment 'nope'" in capsys.readouterr().err


def test_cli_release_unknown_assignment_is_misuse(tmp_path, capsys):
    assert main(["release", "nope", "--out", str(tmp_path)]) == EXIT_USAGE


def test_data_missing_error_names_the_option(tmp_path):
    with pytest.raises(MNISTUnavailableError, match=r"--data-dir PATH .*MNIST_DATA_DIR=PATH"):
        load_mnist(train=False, data_dir=tmp_path, download=False)


def test_data_loads_whole_tensors(data_dir):
    images, labels = load_mnist(train=False, data_dir=data_dir)
    assert images.shape == (10_000, 28, 28) and str(images.dtype) == "torch.uint8"
    assert labels.shape == (10_000,) and int(labels.min()) == 0 and int(labels.max()) == 9


def test_cli_release_writes_zip_notebook_and_nbgrader_course(tmp_path, capsys):
    assert main(["release", "im2col", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "im2col.zip").is_file()
    assert (tmp_path / "notebooks" / "im2col.ipynb").is_file()
    assert (tmp_path / "nbgrader" / "source" / "im2col" / "im2col.ipynb").is_file()
    assert "instructors only" in capsys.readouterr().out
