"""What a client observed in one cell, in one shape for every family (Python, Node, Chromium): the
text it received, the errors it raised or reported (each with its chain of causes), whether it ended
by itself or was still going at the deadline, and what else the client said (a stop reason)."""

from __future__ import annotations

import errno
from dataclasses import asdict, dataclass, field
from typing import Any

Note = str | int | bool | None
MAX_CHAIN = 6
MAX_MESSAGE = 300


@dataclass(frozen=True, slots=True)
class ErrorLink:
    """One error of a chain: its type (Python: `package.Name`, builtins bare), message and code
    (an errno name such as ECONNRESET, or the code a Node error carries)."""

    type: str
    message: str
    code: str | None = None


Chain = list[ErrorLink]


@dataclass(slots=True)
class Observation:
    text: str = ""
    errors: list[Chain] = field(default_factory=list)
    """Each error the client raised or reported, outermost first in its chain."""
    ended: bool = False
    """The client ended by itself (returned, raised or gave up) before the deadline."""
    hung: bool = False
    """The deadline passed first: the client was still waiting, or still reconnecting."""
    notes: dict[str, Note] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Observation:
        errors = [[ErrorLink(**link) for link in chain] for chain in data["errors"]]
        return cls(data["text"], errors, data["ended"], data["hung"], dict(data["notes"]))


def python_chain(exc: BaseException) -> Chain:
    """The exception and its causes (`raise ... from`, else the exception being handled), outermost first."""
    links: Chain = []
    current: BaseException | None = exc
    while current is not None and len(links) < MAX_CHAIN:
        kind = type(current)
        package = kind.__module__.split(".")[0]
        name = kind.__qualname__ if package == "builtins" else f"{package}.{kind.__qualname__}"
        code = errno.errorcode.get(current.errno) if isinstance(current, OSError) and current.errno else None
        links.append(ErrorLink(name, str(current)[:MAX_MESSAGE], code))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return links
