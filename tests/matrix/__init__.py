"""The fault matrix: each fault kind (a column) through each client family the suite installs (a row),
and what the client observed. `run` plays it against mock servers and returns the records, `table`
turns records into the README's table, and `python -m tests.matrix` (scripts/fault-matrix) does both.
"""
