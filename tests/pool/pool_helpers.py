"""Small builders shared by the pool tests (fixtures live in conftest.py)."""

from __future__ import annotations

from rl_router.pool.types import Request, SamplingParams

SMOLLM2 = "smollm2-135m-instruct"  # zoo name: the slow tests go through the zoo like users do


def user(text: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": text},)


def req(
    model: str, text: str, sampling: SamplingParams | None = None, query_id: str | None = None
) -> Request:
    return Request(model=model, messages=user(text), sampling=sampling, query_id=query_id)
