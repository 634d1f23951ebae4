"""The agent's side of an ``agent_steps`` step: a ReAct-style prompt, and its reply read as one game action.

The candidate model (whichever tier the router picked) sees the task, the last few moves, the room
and a numbered list of valid actions, and answers with one line ``Action: <action>`` (an action's
text or its number). :func:`parse_action` turns the reply into the command sent to the game: the
valid action it names when it names one, else the reply's action line as written (the game answers
it with an error, and the env counts it).

>>> messages = agent_messages("Find the coin.", "You are in the kitchen.", ["move west", "look around"], [])
>>> parse_action("Thought: go west.\\nAction: 1", ["move west", "look around"])
('move west', True)
>>> parse_action("Action: dance", ["move west"])
('dance', False)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

ACTION_LINE = re.compile(r"action\s*[:\-]\s*(.+)", re.IGNORECASE)
SYSTEM = (
    "You play a text game. Each turn, choose exactly one of the valid actions. "
    "Reply with one line: Action: <the action>"
)


def agent_messages(
    task: str,
    observation: str,
    valid_actions: Sequence[str],
    history: Sequence[tuple[str, str]],
    max_actions: int = 40,
    max_observation_chars: int = 600,
) -> list[dict[str, str]]:
    """The candidate's chat messages for one step.

    Args:
        task: The task description.
        observation: The game's latest text (cut to ``max_observation_chars``).
        valid_actions: The actions the game accepts now; the first ``max_actions`` are listed.
        history: ``(action, observation)`` of the recent moves, oldest first.
        max_actions: How many valid actions to list (ScienceWorld offers hundreds).
        max_observation_chars: Longest observation shown, for the current one and each past one.
    """
    lines = [f"Task: {task.strip()}"]
    if history:
        lines.append("Recent moves:")
        lines += [f"> {a}\n{_cut(o, max_observation_chars // 3)}" for a, o in history]
    lines.append(f"Now: {_cut(observation, max_observation_chars)}")
    listed = list(valid_actions)[:max_actions]
    lines.append("Valid actions:\n" + "\n".join(f"{i}. {a}" for i, a in enumerate(listed, start=1)))
    lines.append("Reply with one line: Action: <the action>")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def _cut(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s-]", " ", text.lower()).split())


def parse_action(reply: str, valid_actions: Sequence[str], max_chars: int = 200) -> tuple[str, bool]:
    """The game command a reply names, and whether it is one of ``valid_actions``.

    Reads the text after the last ``Action:`` (else the first non-empty line), then in order: a
    number names the listed action of that number; an exact match (case, spaces and punctuation
    aside) names that action; a line that contains exactly one valid action, or is contained in
    exactly one, names it. Anything else is returned as written (cut to ``max_chars``), with False.

    >>> parse_action("move west.", ["move west", "move east"])
    ('move west', True)
    >>> parse_action("I will take the coin now", ["take coin", "take box"])
    ('I will take the coin now', False)
    >>> parse_action("Action: take coin", ["take coin", "take coin box"])
    ('take coin', True)
    """
    found = ACTION_LINE.findall(reply or "")
    first = next((ln for ln in (reply or "").splitlines() if ln.strip()), "")
    line = found[-1] if found else first
    line = line.strip().strip("`'\"*").strip()
    line = line.splitlines()[0].strip() if line else ""
    norm = _norm(line)
    by_norm = {_norm(a): a for a in valid_actions}
    number = re.fullmatch(r"\(?(\d+)[.)]?", line)
    if number and 1 <= int(number.group(1)) <= len(valid_actions):
        return valid_actions[int(number.group(1)) - 1], True
    if norm in by_norm:
        return by_norm[norm], True
    numbered = re.match(r"(\d+)[.)]\s*(.+)", line)  # "2. move west": the listed text decides
    if numbered and _norm(numbered.group(2)) in by_norm:
        return by_norm[_norm(numbered.group(2))], True
    if norm:
        inside = [a for n, a in by_norm.items() if n and re.search(rf"\b{re.escape(n)}\b", norm)]
        if len(inside) == 1:
            return inside[0], True
        around = [a for n, a in by_norm.items() if re.search(rf"\b{re.escape(norm)}\b", n)]
        if len(around) == 1:
            return around[0], True
    return line[:max_chars], False
