"""How far each conversation has gone through a scenario's `replies`, since start or reset."""

from __future__ import annotations

from typing import Any

from mock_server.counters import Counters, Plan, counter_key


class Sequences:
    """Requests counted per scenario and conversation key (None: requests that name no conversation,
    counted together), in `counters` (this process's, or the state every worker shares)."""

    def __init__(self, counters: Counters) -> None:
        self._counters = counters

    def count(self, plan: Plan, scenario: str, conversation: str | None, after: int = 0, *, again: bool = False) -> int:
        """Add to `plan` one more request of `conversation` for `scenario`, going on from `after` when
        the conversation has got no further here (a stored response it continues); its result is this
        request's number, 1 for the first. `again`: the request asks for the last answer again (a
        stream resumed with Last-Event-ID), which keeps its number. Returns the result's index."""

        def change(values: list[Any]) -> tuple[list[Any], int]:
            last = max(values[0] or 0, after)
            count = max(last, 1) if again else last + 1
            return [count], count

        return plan.add((counter_key("replies", scenario, conversation),), change)
