"""The matrix's records: what each client observed in each cell and what the server's journal saw,
kept as JSON so that the table can be written again without playing the matrix."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.matrix.observation import Observation


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request of the cell, from the journal."""

    at_s: float
    """Seconds after the cell's first request arrived."""
    ended_at_s: float | None
    """When its response ended (None: still in flight when the journal was read)."""
    status: int | None
    outcome: str | None
    events_sent: int
    retry_after: str | None
    """The `Retry-After` header the response carried."""


@dataclass(slots=True)
class CellRecord:
    row: str
    column: str
    fault: str
    pending: str | None = None
    """The server's answer when it does not know the fault yet; nothing was played then."""
    observation: Observation = field(default_factory=Observation)
    attempts: list[Attempt] = field(default_factory=list)
    timeout_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "observation": self.observation.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellRecord:
        return cls(
            row=data["row"],
            column=data["column"],
            fault=data["fault"],
            pending=data["pending"],
            observation=Observation.from_json(data["observation"]),
            attempts=[Attempt(**attempt) for attempt in data["attempts"]],
            timeout_s=data["timeout_s"],
        )


@dataclass(slots=True)
class Records:
    versions: dict[str, str]
    """The version of each client package, by row id."""
    cells: list[CellRecord]

    def cell(self, row: str, column: str) -> CellRecord | None:
        return next((c for c in self.cells if (c.row, c.column) == (row, column)), None)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"versions": self.versions, "cells": [cell.to_json() for cell in self.cells]}
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Records:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(dict(data["versions"]), [CellRecord.from_json(cell) for cell in data["cells"]])
