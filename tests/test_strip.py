import pytest

from autograder.assign.strip import MarkerError, find_regions, solution_code_lines, strip_solutions

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
    ### HINT: return a plus one
    return a + 1
    ### END SOLUTION
'''


def test_strip_replaces_each_region_with_a_hinted_raise():
    stub = strip_solutions(SOURCE)
    assert "raise NotImplementedError('Net.forward: double x')" in stub
    assert "    raise NotImplementedError('helper: return a plus one')" in stub
    assert "x * 2" not in stub and "a + 1" not in stub and "BEGIN SOLUTION" not in stub
    assert '"""Spec."""' in stub


def test_strip_keeps_the_stub_importable_and_raising():
    namespace = {}
    exec(compile(strip_solutions(SOURCE), "stub.py", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="helper: return a plus one"):
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


def test_strip_rejects_misspelled_marker():
    with pytest.raises(MarkerError, match="malformed marker"):
        strip_solutions("def f():\n    ## BEGIN SOLUTIONS\n    return 1\n")


def test_strip_rejects_file_without_regions():
    with pytest.raises(MarkerError, match="no '### BEGIN SOLUTION' region"):
        strip_solutions("def f():\n    return 1\n")


def test_find_regions_reports_owner_and_code():
    regions = find_regions(SOURCE)
    assert [(r.owner, r.hint) for r in regions] == [("Net.forward", "double x"), ("helper", "return a plus one")]
    assert solution_code_lines(SOURCE) == {"doubled = x * 2", "return doubled", "return a + 1"}
