"""`python -m bench --workers N` prints N workers against 1 worker in a table of their own."""

from __future__ import annotations

import pytest

from bench.measures import Figure, print_table
from bench.workers import AGAINST


def test_worker_figures_are_printed_against_one_worker(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(
        [
            Figure("2,000 streams, 2 workers: completed", "streams", 2000, 2000, "higher", "= 2000", AGAINST),
            Figure("2,000 streams, 2 workers: lateness p99", "ms", 10.0, 200.0, "lower", "<= 20 ms", AGAINST),
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["more", "workers", "N", "workers", "1", "worker", "ratio", "target"]
    assert lines[2].split()[-5:] == ["streams", "2000.0", "1.00x", "=", "2000"]
    assert lines[3].split()[-7:] == ["10.0", "ms", "200.0", "0.05x", "<=", "20", "ms"]
