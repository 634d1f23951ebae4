"""The one engine that writes router turns: training, evaluation, the export check and inference.

Token-in/token-out, as nanochat's ``Engine``: a caller hands over token-id contexts (prompt plus the
trajectory so far) and gets back :class:`Segment` objects holding the sampled ids exactly as the
model produced them; nothing is decoded and re-tokenised on the way. Two backends satisfy the
:class:`TurnGenerator` protocol:

* :class:`HFTurnGenerator` -- ``model.generate`` with left padding, batched in chunks, stop strings
  and every EOS the model declares; greedy (evaluation, inference) or sampled (training);
* :class:`VLLMTurnGenerator` -- TRL's colocated vLLM engine during GPU training, with logprobs.

A *turn* is the router's text between two env messages. It ends at the first of: a stop string
(:data:`STOP_STRINGS`, Router-R1's ``</search>`` and ``</answer>``), an EOS token, or its token
budget (:func:`turn_end`). Used by :mod:`rl_router.rollout.driver` (every episode),
:class:`rl_router.routers.llm.LLMRouter` (``first_turns``) and, through them, the trainers.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# A router turn ends right after one of these (Router-R1's actions; the env parses the turn).
STOP_STRINGS = ("</search>", "</answer>")


def turn_end(
    ids: Sequence[int],
    limit: int,
    eos_ids: Container[int],
    decode: Callable[[Sequence[int]], str],
    stop_strings: Sequence[str] = STOP_STRINGS,
) -> tuple[int, str]:
    """Where a generated router turn ends: ``(length to keep, reason)``.

    The reason is ``"stop"`` (the kept tokens end in a stop string), ``"eos"`` (the last kept token
    is an end-of-sequence token) or ``"length"`` (the turn used its whole budget without either).
    Tokens after the end are padding or beyond this episode's budget. A stop string found before the
    first EOS wins: a batched ``generate`` pads finished rows with the pad token, which is often the
    EOS token itself.

    Args:
        ids: The generated tokens of one row (no prompt), possibly padded at the end.
        limit: This episode's token budget for the turn.
        eos_ids: End-of-sequence token ids.
        decode: Token ids to text (the router tokenizer's decode).
        stop_strings: Strings that end a turn.

    Example (characters as tokens, ``0`` as EOS/pad):
        >>> decode = lambda ids: "".join(chr(i) for i in ids if i)
        >>> ids = [ord(c) for c in "<a>x</answer>"] + [0, 0]
        >>> turn_end(ids, limit=20, eos_ids={0}, decode=decode)
        (13, 'stop')
        >>> turn_end([ord("h"), ord("i"), 0, 0], limit=20, eos_ids={0}, decode=decode)
        (3, 'eos')
        >>> turn_end([ord(c) for c in "hello"], limit=3, eos_ids={0}, decode=decode)
        (3, 'length')
    """
    ids = list(ids[:limit])
    first_eos = next((i for i, t in enumerate(ids) if t in eos_ids), None)
    body = ids if first_eos is None else ids[:first_eos]
    if any(s in decode(body) for s in stop_strings):
        # The shortest prefix whose text holds a stop string (its text only grows with the prefix).
        lo, hi = 0, len(body)  # decode(body[:lo]) has no stop string, decode(body[:hi]) has one
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if any(s in decode(body[:mid]) for s in stop_strings):
                hi = mid
            else:
                lo = mid
        return hi, "stop"
    if first_eos is not None:
        return first_eos + 1, "eos"
    return len(ids), "length"


@dataclass
class Segment:
    """One generated router turn: its tokens, their sampling logprobs (vLLM only) and why it ended."""

    ids: list[int]
    logprobs: list[float | None] | None
    reason: str  # "stop" (</search> or </answer>), "eos" or "length"


class TurnGenerator(Protocol):
    """Writes the next router turn for a batch of contexts (prompt + trajectory so far, token ids)."""

    def __call__(self, contexts: list[list[int]], limits: list[int]) -> list[Segment]: ...


class StopOnStrings:
    """HF stopping criterion: a row stops once the tail of its generated text holds a stop string.

    Only the generated part is read (the context holds earlier turns' ``</search>``); the tail
    window is enough because a stop string of ``k`` characters spans at most ``k`` tokens.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, start: int, stops: Sequence[str] = STOP_STRINGS):
        self.tokenizer = tokenizer
        self.start = start
        self.stops = tuple(stops)
        self.window = max(len(s) for s in self.stops) + 2

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        tails = input_ids[:, self.start :][:, -self.window :]
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stops) for t in texts], device=input_ids.device)


class HFTurnGenerator:
    """Router turns from ``model.generate`` (left padding, batched in chunks, stop strings, EOS).

    Args:
        model: The router (already unwrapped for generation).
        tokenizer: Its tokenizer.
        sample: Sample (training) or decode greedily (evaluation).
        temperature, top_p, top_k: Sampling settings when ``sample``.
        chunk: Rows per ``generate`` call.
        stops: Strings that end a turn (:data:`STOP_STRINGS`; the LLM-router calibration also stops
            at ``<search>`` to choose the name itself).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        sample: bool = True,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        chunk: int = 64,
        stops: Sequence[str] = STOP_STRINGS,
    ) -> None:
        self.model = model
        self.stops = tuple(stops)
        self.tokenizer = tokenizer
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.chunk = chunk
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": top_k}
        self.options = {
            **(sampling if sample else {"do_sample": False}),
            "eos_token_id": sorted(self.eos_ids),
            "pad_token_id": self.pad_id,
        }

    def __call__(self, contexts: list[list[int]], limits: list[int]) -> list[Segment]:
        out: list[Segment] = []
        for start in range(0, len(contexts), self.chunk):
            out += self._generate(contexts[start : start + self.chunk], limits[start : start + self.chunk])
        return out

    @torch.no_grad()
    def _generate(self, contexts: list[list[int]], limits: list[int]) -> list[Segment]:
        from transformers import GenerationConfig, StoppingCriteriaList

        width = max(len(c) for c in contexts)
        device = self.model.device
        input_ids = torch.tensor([[self.pad_id] * (width - len(c)) + c for c in contexts], device=device)
        attention = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts], device=device)
        generated = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            generation_config=GenerationConfig(**self.options, max_new_tokens=max(limits)),
            stopping_criteria=StoppingCriteriaList([StopOnStrings(self.tokenizer, width, self.stops)]),
        )[:, width:].tolist()
        segments = []
        for row, limit in zip(generated, limits, strict=True):
            end, reason = turn_end(row, limit, self.eos_ids, self._decode, self.stops)
            segments.append(Segment(row[:end], None, reason))
        return segments

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


class VLLMTurnGenerator:
    """Router turns from TRL's colocated vLLM engine (``trainer.vllm_generation``), with logprobs.

    The stop strings and the per-turn cap reach vLLM as sampling parameters (``grpo_args`` puts
    them in ``generation_kwargs``); :func:`turn_end` still cuts each row to its own budget.
    """

    def __init__(self, vllm_generation: Any, tokenizer: PreTrainedTokenizerBase, eos_ids: set[int]) -> None:
        self.vllm_generation = vllm_generation
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids

    def __call__(self, contexts: list[list[int]], limits: list[int]) -> list[Segment]:
        if not contexts:
            return []
        _, completions, logprobs, _ = self.vllm_generation.generate(
            prompts=contexts, images=None, num_generations=1
        )
        segments = []
        for ids, lps, limit in zip(completions, logprobs, limits, strict=True):
            end, reason = turn_end(list(ids), limit, self.eos_ids, self._decode)
            segments.append(Segment(list(ids[:end]), [lp[0] for lp in lps[:end]], reason))
        return segments

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """The tokenizer's EOS plus every EOS of the model's generation config (Qwen has two)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if not ids:
        raise ValueError("the router tokenizer has no EOS token: trajectories must end on one")
    return ids


def chat_prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]]) -> list[int]:
    """Token ids of ``messages`` under the tokenizer's chat template, ending with the assistant header."""
    text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def token_counter(tokenizer: PreTrainedTokenizerBase) -> Callable[[str], int]:
    """``count_tokens(text)`` in the router's own tokens: what the env caps information blocks with."""

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count_tokens


def load_model(folder: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A transformers causal LM and its tokenizer (float32 on CPU, the saved dtype on a GPU)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    on_gpu = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), dtype="auto" if on_gpu else torch.float32, use_safetensors=True
    )
    if on_gpu:
        model = model.to("cuda")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer
