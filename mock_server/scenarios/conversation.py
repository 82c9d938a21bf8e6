"""What a request says about its conversation, and the `match` rules that look at it.

`Conversation` is read once per request from its messages, whatever the dialect (see
`mock_server/http/conversation.py`): which turn it is, who spoke last, the tool results it sends back,
whether it offers tools and what its system prompt says. `ConversationMatch` holds the rules a
scenario's `match` writes about these facts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mock_server.scenarios.patterns import MatchPattern
from mock_server.scenarios.problems import Described
from mock_server.scenarios.tool_ledger import EMPTY_LEDGER, ToolLedger

Role = Literal["user", "assistant", "tool", "system"]
ROLES: tuple[Role, ...] = ("user", "assistant", "tool", "system")


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's result the client sends back: the call it answers, the tool's name and its content."""

    call_id: str = ""
    name: str = ""
    """The tool's name, when the result or the call it answers names it."""
    content: str = ""


@dataclass(frozen=True, slots=True)
class OfferedTool:
    """A tool a request offers the model: its name and its parameters' JSON Schema (as JSON text)."""

    name: str
    parameters: str = "{}"


@dataclass(frozen=True, slots=True)
class ToolOffer:
    """The tools a request offers, and what it lets the model do with them."""

    tools: tuple[OfferedTool, ...] = ()
    choice: str | None = None
    """`none` (no tool), `required` (some tool), a tool's name (that one), or None (the model chooses)."""
    parallel: bool = True
    """Whether the model may call several tools at once (OpenAI's `parallel_tool_calls`)."""


NO_OFFER = ToolOffer()


@dataclass(frozen=True, slots=True)
class Conversation:
    """The facts about a request's conversation that `match` rules look at."""

    turn: int = 1
    """How many user messages the conversation has (tool results are not the user's)."""
    last_role: Role = "user"
    tool_results: tuple[ToolResult, ...] = ()
    """The results sent since the last user message: what the model is asked to act on now."""
    offer: ToolOffer = NO_OFFER
    system: str = ""
    """The system (or developer) prompt's text, its parts joined by newlines."""
    calls: tuple[tuple[str, str], ...] = ()
    """Every tool call the conversation holds, as (call id, tool name): how a result that names only
    its call (OpenAI's, Anthropic's) gets its tool's name."""
    ledger: ToolLedger = EMPTY_LEDGER
    """Which calls have their result, and the results brought back now (for the verdict)."""

    @property
    def tools_offered(self) -> bool:
        return bool(self.offer.tools)

    def after(self, earlier: Conversation, more_calls: tuple[tuple[str, str], ...] = ()) -> Conversation:
        """This request's facts when it continues `earlier` (a stored response's conversation, whose
        answer made `more_calls`): its turns add up, and its results take their names from the calls
        made before."""
        calls = (*earlier.calls, *more_calls, *self.calls)
        names = dict(calls)
        results = tuple(
            result if result.name else replace(result, name=names.get(result.call_id, ""))
            for result in self.tool_results
        )
        ledger = self.ledger.after(earlier.ledger.with_calls(more_calls))
        return replace(self, turn=earlier.turn + self.turn, tool_results=results, calls=calls, ledger=ledger)


NO_CONVERSATION = Conversation()
"""A request of one user message (a prompt alone)."""

_STRICT = ConfigDict(extra="forbid", frozen=True)

TurnNumber = Annotated[int, Field(ge=1), Described("a turn number (1 for the first user message)")]


class TurnRange(BaseModel):
    """`turn: {min: 2}`: the turns from `min` to `max`, both included."""

    model_config = _STRICT

    min: TurnNumber | None = None
    max: TurnNumber | None = None

    @model_validator(mode="after")
    def _check_bounds(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError("a turn range needs `min`, `max` or both, like {min: 2} or {min: 2, max: 4}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}; no turn would match")
        return self

    def __contains__(self, turn: object) -> bool:
        if not isinstance(turn, int):
            return False
        return (self.min is None or turn >= self.min) and (self.max is None or turn <= self.max)


class ToolResultMatch(BaseModel):
    """Regexes one tool result of the request must fit, every one given by the same result."""

    model_config = _STRICT

    name: MatchPattern | None = None
    """The tool's name (`get_weather`)."""
    call_id: MatchPattern | None = None
    """The id of the call it answers (`call_abc`, Anthropic's `toolu_...`)."""
    content: MatchPattern | None = None
    """The result's content, as text (a JSON object as its JSON)."""

    def fits(self, result: ToolResult) -> bool:
        return (
            (self.name is None or self.name.search(result.name))
            and (self.call_id is None or self.call_id.search(result.call_id))
            and (self.content is None or self.content.search(result.content))
        )


class ConversationMatch(BaseModel):
    """The `match` rules on the whole conversation, not only its last prompt."""

    model_config = _STRICT

    turn: Annotated[
        TurnNumber | TurnRange | None,
        Described("a turn", "a number (1 for the first user message) or a range like {min: 2, max: 4}"),
    ] = None
    """Which user message this is: `2`, or a range `{min: 2}`."""
    last_role: Annotated[Role | None, Described("a role", "one of " + ", ".join(ROLES))] = None
    """Who sent the last message: `tool` when the client sends tool results back."""
    tool_result: ToolResultMatch | None = None
    """A tool result sent since the last user message that fits every regex given."""
    tools_offered: bool | None = None
    """Whether the request offers the model tools (a non-empty `tools`)."""
    system: MatchPattern | None = None
    """A regex on the system prompt (empty when there is none)."""

    def fits_conversation(self, conversation: Conversation) -> bool:
        """Whether every conversation rule given fits."""
        turn = self.turn
        if turn is not None and not (conversation.turn == turn if isinstance(turn, int) else conversation.turn in turn):
            return False
        if self.last_role is not None and conversation.last_role != self.last_role:
            return False
        wanted = self.tool_result
        if wanted is not None and not any(wanted.fits(result) for result in conversation.tool_results):
            return False
        if self.tools_offered is not None and conversation.tools_offered != self.tools_offered:
            return False
        return self.system is None or self.system.search(conversation.system)
