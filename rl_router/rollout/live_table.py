"""Routing tables recorded live: ask every candidate of a pool every question, score the replies.

Evaluation of a router needs each candidate's outcome on each held-out question (for the single-model
and oracle baselines and the threshold curves), and training on a live pool is cheapest when every
(question, candidate) answer is generated once, in big batches, and then served from the response
cache. :func:`collect_routing_table` does both: one ``pool.generate`` call (the pool batches per
model and runs models concurrently), replies scored with :func:`rewards.outcome.reply_match`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from envs.multi_llm_qa import select_request
from rewards.outcome import reply_match
from rl_router.data.routing_table import RoutingTable
from rl_router.pool.types import CandidatePool

log = logging.getLogger(__name__)


def collect_routing_table(
    pool: CandidatePool, examples: Sequence[Mapping[str, Any]], name: str
) -> RoutingTable:
    """Every candidate's reply, score and token counts on every example, as a routing table.

    Columns are the descriptors' ``model`` fields (what :func:`~rl_router.eval.table_eval.
    evaluate_router_on_table` matches on). A failed call scores 0 and is counted in the log.

    Raises:
        RuntimeError: every call failed (a dead pool, not a few bad answers).
    """
    descriptors = list(pool.descriptors)
    requests = [select_request(d.name, ex) for ex in examples for d in descriptors]
    results = pool.generate(requests)
    m = len(descriptors)
    texts = [r.text for r in results]
    golden = [list(ex["golden_answers"]) for ex in examples for _ in descriptors]
    scores = np.array(
        [0.0 if r.error else s for r, s in zip(results, reply_match(texts, golden), strict=True)]
    )
    errors = [r.error for r in results if r.error]
    if errors and len(errors) == len(results):
        raise RuntimeError(f"every one of {len(results)} candidate calls failed; first error: {errors[0]}")
    if errors:
        log.warning(
            "%s: %d of %d candidate calls failed (scored 0); first: %s",
            name,
            len(errors),
            len(results),
            errors[0],
        )
    return RoutingTable(
        name=name,
        models=[d.model for d in descriptors],
        ids=[str(ex["id"]) for ex in examples],
        prompts=[str(ex["question"]) for ex in examples],
        sources=[str(ex["source"]) for ex in examples],
        scores=scores.reshape(len(examples), m),
        responses=[
            [r.text if not r.error else None for r in results[i * m : (i + 1) * m]]
            for i in range(len(examples))
        ],
        input_tokens=np.array([r.input_tokens for r in results]).reshape(len(examples), m),
        output_tokens=np.array([r.output_tokens for r in results]).reshape(len(examples), m),
    )
