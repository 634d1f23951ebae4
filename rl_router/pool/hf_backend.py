"""Transformers candidate: batched ``generate`` with left padding and attention masks.

Runs in the caller's process or, with ``ray_actor: true``, inside a Ray actor (see ray_actors.py).
Requests of one call are grouped by sampling params (one ``generate`` per group and chunk), because
temperature, top-p and the new-token cap are per ``generate`` call in transformers.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from rl_router.pool.backend import resolve_model_path, sampling_of
from rl_router.pool.types import ModelDescriptor, Request, Result, SamplingParams


@dataclass
class HFOptions:
    """How the transformers backend loads and batches its model."""

    dtype: str = "float32"  # torch dtype name; float32 is the fast path on CPU
    device: str = "cpu"  # "cpu", "cuda", "cuda:1" ...
    batch_size: int = 32  # most sequences in one generate call (longer batches are chunked)
    num_threads: int | None = None  # torch intra-op threads (None: torch's default)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"hf.batch_size={self.batch_size}: use at least 1")


class HFBackend:
    """A causal LM served with ``model.generate``; loads the model at construction.

    Args:
        descriptor: the candidate; ``descriptor.model`` is a zoo name, local path or hub id.
        options: dtype, device and batching.
    """

    enforces_timeout = False  # in-process: the pool bounds each call with its deadline thread
    cache_answers = True

    def __init__(self, descriptor: ModelDescriptor, options: HFOptions | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.descriptor = descriptor
        self.options = options or HFOptions()
        if self.options.num_threads:
            torch.set_num_threads(self.options.num_threads)
        path = resolve_model_path(descriptor.model)
        revision = None if descriptor.revision == "main" else descriptor.revision
        self.tokenizer = AutoTokenizer.from_pretrained(path, revision=revision, padding_side="left")
        if self.tokenizer.pad_token is None:  # batching needs a pad token; eos is never attended to
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            path, revision=revision, dtype=getattr(torch, self.options.dtype)
        ).to(self.options.device)
        self.model.eval()

    def wait_ready(self) -> None:
        """Ready once built."""

    @property
    def descriptors(self) -> list[ModelDescriptor]:
        return [self.descriptor]

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        results: list[Result | None] = [None] * len(requests)
        groups: dict[SamplingParams, list[int]] = defaultdict(list)
        for i, request in enumerate(requests):
            groups[sampling_of(request, self.descriptor)].append(i)
        for sampling, indices in groups.items():
            for start in range(0, len(indices), self.options.batch_size):
                chunk = indices[start : start + self.options.batch_size]
                for i, result in zip(
                    chunk, self._generate([requests[i] for i in chunk], sampling), strict=True
                ):
                    results[i] = result
        return results  # type: ignore[return-value]  # every index was filled above

    def _generate(self, requests: list[Request], sampling: SamplingParams) -> list[Result]:
        import torch

        start = time.perf_counter()
        prompts = [
            self.tokenizer.apply_chat_template(list(r.messages), tokenize=False, add_generation_prompt=True)
            for r in requests
        ]
        # The chat template already starts with the special tokens the model expects.
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(self.options.device)
        sample = sampling.temperature > 0
        torch.manual_seed(sampling.seed)
        with torch.inference_mode():
            out = self.model.generate(
                **batch,
                max_new_tokens=sampling.max_tokens,
                do_sample=sample,
                temperature=sampling.temperature if sample else None,
                top_p=sampling.top_p if sample else None,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = out[:, batch["input_ids"].shape[1] :]
        eos_ids = _eos_ids(self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id)
        latency = time.perf_counter() - start
        results = []
        for row, mask in zip(new_tokens.tolist(), batch["attention_mask"], strict=True):
            # Generation stops at the first eos; what follows is padding of the batch.
            n = next((k + 1 for k, t in enumerate(row) if t in eos_ids), len(row))
            input_tokens = int(mask.sum())
            results.append(
                Result(
                    text=self.tokenizer.decode(row[:n], skip_special_tokens=True).strip(),
                    input_tokens=input_tokens,
                    output_tokens=n,
                    cost_usd=self.descriptor.cost_usd(input_tokens, n),
                    latency_s=latency,
                )
            )
        return results

    def close(self) -> None:
        self.model = None  # drop the weights now, not at interpreter exit


def _eos_ids(generation_eos: int | list[int] | None, tokenizer_eos: int | None) -> set[int]:
    ids = set(generation_eos if isinstance(generation_eos, list) else [generation_eos])
    ids.add(tokenizer_eos)
    ids.discard(None)
    return ids
