import pytest

from autograder.assign.strip import WIDTH, MarkerError, find_regions, solution_code_lines, strip_solutions

SOURCE = '''class Net:
    def forward(self, x):
        """Spec."""
        ### BEGIN SOLUTION
        ### HINT: double x
        doubled = x * 2
        return doubled
        ### END SOLUTION


def helper(a):
    ### BEGIN SOLUTION
    ### HINT: return a plus one,
    ### HINT: as the docstring says
    return a + 1
    ### END SOLUTION
'''


def test_strip_replaces_each_region_with_a_todo_comment_and_a_short_raise():
    stub = strip_solutions(SOURCE)
    assert ('        """Spec."""\n'
            '        # TODO: double x\n'
            '        raise NotImplementedError("Net.forward")\n') in stub
    assert ('    # TODO: return a plus one,\n'
            '    #       as the docstring says\n'
            '    raise NotImplementedError("helper")\n') in stub
    assert "x * 2" not in stub and "a + 1" not in stub and "BEGIN SOLUTION" not in stub and "HINT" not in stub


def test_strip_wraps_long_hints_and_keeps_the_raise_short():
    words = " ".join(f"word{i}" for i in range(60))
    stub = strip_solutions(f"def f():\n    ### BEGIN SOLUTION\n    ### HINT: {words}\n    return 1\n    ### END SOLUTION\n")
    comment = [line for line in stub.splitlines() if line.lstrip().startswith("#")]
    assert len(comment) > 2 and all(len(line) <= WIDTH for line in comment)
    assert comment[0].startswith("    # TODO: word0 ") and all(line.startswith("    #       ") for line in comment[1:])
    assert " ".join(line.split("#")[1].replace("TODO:", "").strip() for line in comment) == words
    assert stub.splitlines()[-1] == '    raise NotImplementedError("f")'


def test_strip_keeps_the_stub_importable_and_raising():
    namespace = {}
    exec(compile(strip_solutions(SOURCE), "stub.py", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="^helper$"):
        namespace["helper"](1)


def test_strip_rejects_nested_markers():
    bad = "def f():\n    ### BEGIN SOLUTION\n    ### HINT: h\n    ### BEGIN SOLUTION\n    x = 1\n    ### END SOLUTION\n"
    with pytest.raises(MarkerError, match=r"bad.py:4: .*inside the region opened at line 2"):
        strip_solutions(bad, filename="bad.py")


def test_strip_rejects_unterminated_region():
    with pytest.raises(MarkerError, match=r"bad.py:2: .*never closed"):
        strip_solutions("def f():\n    ### BEGIN SOLUTION\n    ### HINT: h\n    return 1\n", filename="bad.py")


def test_strip_rejects_stray_end_marker():
    with pytest.raises(MarkerError, match="without a matching"):
        strip_solutions("def f():\n    return 1\n    ### END SOLUTION\n")


def test_strip_rejects_region_without_hint():
    with pytest.raises(MarkerError, match="HINT"):
        strip_solutions("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n")


def test_strip_rejects_hint_lines_after_the_code_or_outside_a_region():
    late = "def f():\n    ### BEGIN SOLUTION\n    ### HINT: h\n    x = 1\n    ### HINT: late\n    return x\n    ### END SOLUTION\n"
    with pytest.raises(MarkerError, match=r"bad.py:5: .*after the code"):
        strip_solutions(late, filename="bad.py")
    with pytest.raises(MarkerError, match=r"bad.py:2: .*outside a solution region"):
        strip_solutions("def f():\n    ### HINT: h\n    return 1\n", filename="bad.py")


def test_strip_rejects_misspelled_marker():
    with pytest.raises(MarkerError, match="malformed marker"):
        strip_solutions("def f():\n    ## BEGIN SOLUTIONS\n    return 1\n")


def test_strip_rejects_file_without_regions():
    with pytest.raises(MarkerError, match="no '### BEGIN SOLUTION' region"):
        strip_solutions("def f():\n    return 1\n")


def test_find_regions_reports_owner_hints_and_code():
    regions = find_regions(SOURCE)
    assert [(r.owner, r.hints) for r in regions] == [
        ("Net.forward", ("double x",)), ("helper", ("return a plus one,", "as the docstring says"))]
    assert regions[1].hint == "return a plus one, as the docstring says" and regions[1].first_code_line == 15
    assert solution_code_lines(SOURCE) == {"doubled = x * 2", "return doubled", "return a + 1"}


@pytest.mark.parametrize("name", ["mlp", "cnn", "vgg", "im2col", "analysis"])
def test_every_stub_is_short_and_readable(name):
    """Every TODO comment of every stub fits in 100 characters, and each raise names only its part."""
    from autograder.config import load_assignment

    config = load_assignment(name)
    for stub in config.handout.stubs:
        text = strip_solutions((config.solution_dir / stub).read_text(encoding="utf-8"))
        lines = text.splitlines()
        todo = [n for n, line in enumerate(lines) if line.lstrip().startswith("# TODO: ")]
        raises = [n for n, line in enumerate(lines) if "raise NotImplementedError(" in line]
        assert len(todo) == len(raises) == len(find_regions((config.solution_dir / stub).read_text()))
        for start, end in zip(todo, raises):
            assert start < end and all(lines[n].lstrip().startswith("#       ") for n in range(start + 1, end))
            assert all(len(lines[n]) <= WIDTH for n in range(start, end)), lines[start]
            assert len(lines[end]) < 60, lines[end]
