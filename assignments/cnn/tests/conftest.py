"""Fixtures of assignment 2 (simple CNN): ``make_net`` and ``trace_net`` come from mnistkit's pytest plugin."""


def pytest_generate_tests(metafunc):
    """Tests that take ``table_row`` run once per row of the shape table (row 0, the input, excluded)."""
    if "table_row" in metafunc.fixturenames:
        from cnn_contract import ROW_IDS, TABLE

        metafunc.parametrize("table_row", list(range(1, len(TABLE))), ids=ROW_IDS)
