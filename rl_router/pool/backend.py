"""What the per-model backends share: sampling resolution, error results and model-path lookup.

Every backend class serves ONE model and is itself a :class:`~rl_router.pool.types.CandidatePool`
(``descriptors`` is a one-element list), so a backend can be used alone, hosted in a Ray actor, or
composed by :class:`~rl_router.pool.pool.ModelPool`, which sends it each model's batch in one call
and treats it as its declared traits say (:class:`~rl_router.pool.types.Backend`).
"""

from __future__ import annotations

from rl_router.pool.types import ModelDescriptor, Request, Result, SamplingParams


def sampling_of(request: Request, descriptor: ModelDescriptor) -> SamplingParams:
    """The request's own sampling, or the model's default when the request leaves it unset."""
    return request.sampling if request.sampling is not None else descriptor.sampling


def error_result(message: str, latency_s: float = 0.0) -> Result:
    """A failed call: no text, no tokens, no charge."""
    return Result(error=message[:500], latency_s=latency_s)


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of an exception, one line, bounded (it ends up in env observations and logs)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500]


def resolve_model_path(model: str) -> str:
    """What to hand to a loader for ``model``: a zoo name is materialised, paths and hub ids pass through."""
    from rl_router.zoo import resolve  # lazy: the zoo imports torch and converts GGUF files on first use

    return resolve(model)
