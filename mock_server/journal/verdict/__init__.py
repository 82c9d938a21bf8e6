"""Client verdicts: what a client got wrong, judged from the request journal.

Pure functions from journal snapshots and a moment ("now") to findings: no I/O and no clock of their
own, so the rules are tested without waiting. A check that waits for something not to happen (a retry
after a cut stream, a client giving up on a stall) stays pending until its time has passed.

- `calls.py`    grouping records into calls: a request and its retries and reconnects
- `rules.py`    one function per kind of finding about one call, and `judge(records, now)`
- `across.py`   the findings across calls: an agent loop's tool results, a client's rate limit
- `findings.py` the kinds (codes, severity, title, advice), findings, and the verdict as JSON and text
"""

from mock_server.journal.verdict.calls import Call, group_calls
from mock_server.journal.verdict.findings import FINDING_KINDS, Finding, Kind, Pending, Severity, Verdict
from mock_server.journal.verdict.rules import judge

__all__ = ["FINDING_KINDS", "Call", "Finding", "Kind", "Pending", "Severity", "Verdict", "group_calls", "judge"]
