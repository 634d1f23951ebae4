"""Deterministic, dependency-free token counts for recorded data that carries none.

The RouteLLM tables record correctness (and for GSM8K the responses) but no token counts, and
tiktoken's ``cl100k_base`` BPE file is not on these machines (tiktoken downloads it on first use,
and run time has no network). So counts come from a regex that mimics the pre-tokeniser of GPT-style
BPE vocabularies:

* a run of letters is one token per started 7 characters (common English words are one BPE
  token; long or rare words split into several),
* digits count in groups of up to three, as ``cl100k_base`` splits numbers,
* every other non-space character (punctuation, symbols) is one token,
* a run of line breaks is one token; spaces are free (BPE merges them into the next word).

This is an approximation, not any real tokenizer's count: use it for relative cost (which model,
which query is dearer), not for billing. It is stable across machines and versions, which matters
more here: rewards and reports must not change when a cache file appears.
"""

from __future__ import annotations

import math
import re

_PIECE = re.compile(r"[^\W\d_]+|\d{1,3}|\n+|[^\w\s]|_")
_LETTERS_PER_TOKEN = 7
# A multiple-choice option line as RouteLLM's MMLU prompts write it: "A. text".
_OPTION_LINE = re.compile(r"^([A-J])[.)]\s+(.*)$", re.MULTILINE)
# Tokens a chat model spends around a restated option ("The answer is", a full stop, EOS).
_ANSWER_FRAME_TOKENS = 4


def count_tokens(text: str | None) -> int:
    """Approximate token count of ``text`` (0 for None or empty).

    >>> count_tokens("The answer is 12345.")
    6
    >>> count_tokens("")
    0
    """
    if not text:
        return 0
    total = 0
    for piece in _PIECE.findall(text):
        if piece[0].isalpha():
            total += math.ceil(len(piece) / _LETTERS_PER_TOKEN)
        else:
            total += 1
    return total


def estimate_choice_answer_tokens(prompt: str) -> int:
    """Estimated output tokens of a chat model answering a multiple-choice prompt.

    Used where a benchmark recorded correctness but no response (RouteLLM's MMLU). The estimate
    assumes the model names a letter and restates that option, so it is the mean token count of the
    option lines ("A. text", counted whole) plus a short answer frame. Prompts without parseable
    options fall back to the frame alone.

    >>> estimate_choice_answer_tokens("Q?\\nA. red\\nB. green apples\\nAnswer:")
    8
    """
    options = _OPTION_LINE.findall(prompt)
    if not options:
        return _ANSWER_FRAME_TOKENS
    mean_option = sum(count_tokens(f"{letter}. {text}") for letter, text in options) / len(options)
    return _ANSWER_FRAME_TOKENS + round(mean_option)
