"""Router-R1's format rules, one reward function per rule, plus their conjunction.

A completion is a whole Router-R1 trajectory as the router's model sees it: its own turns with the
env's ``<information>`` blocks in between. A well-formed one reads::

    <think>…</think> [<think>…</think> or free text …] <search>MODEL: sub-query</search>
    <information>…</information>
    <think>…</think> … <answer>…</answer>

Each rule scores ``0.0`` when the completion keeps it and ``-1.0`` (Router-R1's penalty) when it
breaks it, so its batch mean logs minus the violation rate (``train/reward/<rule>``):

* :func:`format_tags_balanced`: every ``<tag>`` is closed by ``</tag>`` before any other protocol
  tag appears (no stray, unclosed, nested or interleaved tags).
* :func:`format_think_first`: the completion, and every turn after an ``<information>`` block,
  starts with ``<think>``.
* :func:`format_think_content`: every ``<think>`` holds reasoning (not empty, not the prompt's
  ``...`` placeholder).
* :func:`format_answer_last`: exactly one non-empty ``<answer>``, with nothing after it.
* :func:`format_search_query`: every ``<search>`` reads ``MODEL: sub-query`` with both parts filled in
  and no template placeholder left.
* :func:`format_information_follows_search`: each ``<search>`` is followed by an ``<information>``
  block and each ``<information>`` block answers a ``<search>`` (a router cannot forge one).
* :class:`FormatKnownModels`: every ``<search>`` names a candidate of the pool.
* :class:`FormatMaxRoutes`: at most ``max_routes`` searches.

:class:`RouterR1Format` is the conjunction (``-1.0`` if any rule breaks), the ``format_ok`` that
:class:`rewards.combine.RouterR1Reward` gates on.

Differences from Router-R1's code, on purpose: a sub-query may contain colons (the model name ends
at the first one, so pool names must not contain ``:``); the order rules (think after information,
information after search) replace their count comparison, which a router could satisfy by writing
its own ``<information>`` block.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rewards.combine import FORMAT_PENALTY
from rewards.outcome import Completion, completion_text

TAGS = ("think", "search", "answer", "information")
# Placeholders of the prompt template (envs.router_r1_protocol): a search that still holds one was copied.
PLACEHOLDERS = ("model-name", "sub-query")

_TAG_TOKEN = re.compile(r"<(/?)(think|search|answer|information)>")
_BLOCK = re.compile(r"<(think|search|answer|information)>(.*?)</\1>", re.DOTALL)


@dataclass(frozen=True)
class Block:
    """One ``<tag>content</tag>`` span of a text; ``start``/``end`` index the whole span."""

    tag: str
    content: str
    start: int
    end: int


def find_blocks(text: str) -> list[Block]:
    """Every ``<tag>…</tag>`` span, left to right, each closed by the first matching close tag.

    On a text that breaks :func:`format_tags_balanced` the spans may hold other tags; the other
    rules still read these spans, so each rule can be checked (and fails) on its own.

    >>> [(b.tag, b.content) for b in find_blocks("<think>hm</think> ok <answer>4</answer>")]
    [('think', 'hm'), ('answer', '4')]
    """
    return [Block(m.group(1), m.group(2), m.start(), m.end()) for m in _BLOCK.finditer(text)]


def parse_search(content: str) -> tuple[str, str] | None:
    """``(model, sub_query)`` of a search block's content, or None when it is not ``MODEL: query``.

    >>> parse_search(" fake-large : Capital of France? ")
    ('fake-large', 'Capital of France?')
    >>> parse_search("MODEL-NAME: SUB-QUERY") is None  # the template's placeholder, copied
    True
    """
    model, colon, query = content.partition(":")
    model, query = model.strip(), query.strip()
    if not colon or not model or not query:
        return None
    if any(p in content.lower() for p in PLACEHOLDERS):
        return None
    return model, query


def _only_space(text: str) -> bool:
    return not text.strip()


def _tags_balanced(text: str) -> bool:
    open_tag: str | None = None
    for match in _TAG_TOKEN.finditer(text):
        closing, tag = match.group(1) == "/", match.group(2)
        if open_tag is None and not closing:
            open_tag = tag
        elif open_tag == tag and closing:
            open_tag = None
        else:  # a stray close, or any tag inside an open block
            return False
    return open_tag is None


def _think_first(text: str) -> bool:
    starts = [0] + [b.end for b in find_blocks(text) if b.tag == "information"]
    # Text after the last information block may be empty (the trajectory was cut); answer_last catches that.
    return all(_only_space(text[s:]) or text[s:].lstrip().startswith("<think>") for s in starts)


def _think_content(text: str) -> bool:
    return all(b.content.strip() not in ("", "...") for b in find_blocks(text) if b.tag == "think")


def _answer_last(text: str) -> bool:
    answers = [b for b in find_blocks(text) if b.tag == "answer"]
    return len(answers) == 1 and bool(answers[0].content.strip()) and _only_space(text[answers[0].end :])


def _search_query(text: str) -> bool:
    return all(parse_search(b.content) is not None for b in find_blocks(text) if b.tag == "search")


def _information_follows_search(text: str) -> bool:
    blocks = find_blocks(text)
    for i, block in enumerate(blocks):
        if block.tag == "search":
            after = blocks[i + 1] if i + 1 < len(blocks) else None
            if after is None or after.tag != "information" or not _only_space(text[block.end : after.start]):
                return False
        if block.tag == "information":
            before = blocks[i - 1] if i > 0 else None
            if before is None or before.tag != "search" or not _only_space(text[before.end : block.start]):
                return False
    return True


def _score(completions: Sequence[Completion], rule: Callable[[str], bool]) -> list[float | None]:
    return [0.0 if rule(completion_text(c)) else FORMAT_PENALTY for c in completions]


def format_tags_balanced(completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
    """Every protocol tag is closed before the next one opens.

    >>> format_tags_balanced(["<think>a</think><answer>b</answer>", "<think>a<answer>b</answer></think>"])
    [0.0, -1.0]
    """
    return _score(completions, _tags_balanced)


def format_think_first(completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
    """The completion and every turn after an ``<information>`` block open with ``<think>``.

    >>> format_think_first(["<think>a</think><answer>b</answer>", "<answer>b</answer>"])
    [0.0, -1.0]
    """
    return _score(completions, _think_first)


def format_think_content(completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
    """Every ``<think>`` block holds reasoning, not nothing or ``...``.

    >>> format_think_content(["<think>France</think>", "<think> ... </think>", "<think></think>"])
    [0.0, -1.0, -1.0]
    """
    return _score(completions, _think_content)


def format_answer_last(completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
    """Exactly one non-empty ``<answer>``, and nothing but whitespace after it.

    >>> format_answer_last(["x<answer>4</answer>\\n", "<answer>4</answer> sure", "<answer> </answer>"])
    [0.0, -1.0, -1.0]
    """
    return _score(completions, _answer_last)


def format_search_query(completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
    """Every ``<search>`` reads ``MODEL: sub-query`` with both parts filled in.

    >>> format_search_query(["<search>m: why?</search>", "<search>why?</search>", "<search>m:</search>"])
    [0.0, -1.0, -1.0]
    """
    return _score(completions, _search_query)


def format_information_follows_search(completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
    """Searches and ``<information>`` blocks come in adjacent pairs, search first.

    >>> format_information_follows_search([
    ...     "<search>m: q</search>\\n<information>r</information>",
    ...     "<search>m: q</search> wait <information>r</information>",
    ...     "<think>a</think><information>forged</information>",
    ... ])
    [0.0, -1.0, -1.0]
    """
    return _score(completions, _information_follows_search)


class FormatKnownModels:
    """Every ``<search>`` routes to a candidate of the pool (names compare case-insensitively).

    Args:
        model_names: The pool's candidate names.
        name: Metric key suffix: logged as ``train/reward/<name>``.

    Example:
        >>> rule = FormatKnownModels(["fake-small", "fake-large"])
        >>> rule(["<search>Fake-Large: q</search>", "<search>gpt-9: q</search>"])
        [0.0, -1.0]
    """

    def __init__(self, model_names: Iterable[str], name: str = "format_known_models") -> None:
        self.model_names = sorted(model_names)
        self._canonical = {n.lower(): n for n in self.model_names}
        self.name = name
        self.__name__ = name  # TRL names a reward function's metric after `__name__`

    def canonical(self, model: str) -> str:
        """The pool's spelling of a routed name (``KeyError`` for an unknown one)."""
        return self._canonical[model.strip().lower()]

    def check(self, text: str) -> bool:
        """Whether one completion keeps the rule."""
        searches = [b for b in find_blocks(text) if b.tag == "search"]
        return all(b.content.partition(":")[0].strip().lower() in self._canonical for b in searches)

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        return _score(completions, self.check)

    def __repr__(self) -> str:
        return f"FormatKnownModels({self.model_names!r}, name={self.name!r})"


class FormatMaxRoutes:
    """At most ``max_routes`` ``<search>`` blocks (Router-R1: 4).

    Args:
        max_routes: Searches allowed in one trajectory.
        name: Metric key suffix: logged as ``train/reward/<name>``.

    Example:
        >>> FormatMaxRoutes(1)(["<search>m: a</search>", "<search>m: a</search><search>m: b</search>"])
        [0.0, -1.0]
    """

    def __init__(self, max_routes: int = 4, name: str = "format_max_routes") -> None:
        if max_routes < 0:
            raise ValueError(f"max_routes={max_routes}: use 0 (answer directly) or more")
        self.max_routes = max_routes
        self.name = name
        self.__name__ = name  # TRL names a reward function's metric after `__name__`

    def check(self, text: str) -> bool:
        """Whether one completion keeps the rule."""
        return sum(b.tag == "search" for b in find_blocks(text)) <= self.max_routes

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        return _score(completions, self.check)

    def __repr__(self) -> str:
        return f"FormatMaxRoutes({self.max_routes}, name={self.name!r})"


class RouterR1Format:
    """All of Router-R1's format rules at once: ``0.0`` when every rule holds, else ``-1.0``.

    Args:
        model_names: The pool's candidate names.
        max_routes: Searches allowed in one trajectory.
        name: Metric key suffix: logged as ``train/reward/<name>``.

    Example:
        >>> fmt = RouterR1Format(["fake-large"], max_routes=4)
        >>> good = (
        ...     "<think>Ask.</think><search>fake-large: capital of France?</search>"
        ...     "\\n\\n<information>Paris</information>\\n\\n<think>Got it.</think><answer>Paris</answer>"
        ... )
        >>> fmt([good, "<answer>Paris</answer>"])
        [0.0, -1.0]
        >>> fmt.violations("<answer>Paris</answer>")
        ['format_think_first']
    """

    def __init__(self, model_names: Iterable[str], max_routes: int = 4, name: str = "format") -> None:
        self.known_models = FormatKnownModels(model_names)
        self.max_routes = FormatMaxRoutes(max_routes)
        self.rules: dict[str, Callable[[str], bool]] = {
            "format_tags_balanced": _tags_balanced,
            "format_think_first": _think_first,
            "format_think_content": _think_content,
            "format_answer_last": _answer_last,
            "format_search_query": _search_query,
            "format_information_follows_search": _information_follows_search,
            self.known_models.name: self.known_models.check,
            self.max_routes.name: self.max_routes.check,
        }
        self.name = name
        self.__name__ = name  # TRL names a reward function's metric after `__name__`

    def violations(self, text: str, rules: Iterable[str] | None = None) -> list[str]:
        """Names of the rules ``text`` breaks (among ``rules``; all of them when None)."""
        names = self.rules if rules is None else rules
        return [name for name in names if not self.rules[name](text)]

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        return [FORMAT_PENALTY if self.violations(completion_text(c)) else 0.0 for c in completions]

    def __repr__(self) -> str:
        return (
            f"RouterR1Format({self.known_models.model_names!r}, max_routes={self.max_routes.max_routes}, "
            f"name={self.name!r})"
        )
