"""SFT warm start for LLM routers: TRL's ``SFTTrainer`` on synthesised protocol-correct trajectories.

Tiny routers do not write Router-R1's tags zero-shot, so GRPO would only ever see format penalties.
Before GRPO, :func:`synthesize_trajectories` asks every candidate every training question once (ONE
batched ``pool.generate``; a caching pool keeps the answers, so the GRPO rollouts that route the
same sub-query later are cache hits) and writes, for each question some candidate answers, the
trajectory that routes to the cheapest such candidate and answers with the answer its reply states
(``routes="cheapest"``; ``routes="every_correct"`` writes one trajectory per candidate that answers,
see :data:`SFT_ROUTES`)::

    <think>fake-small is the cheapest candidate ... I will ask it.</think>
    <search>fake-small: What is the capital of France?</search>

    <information>The capital of France is Paris.</information>

    <think>The information answers the question.</think>
    <answer>Paris</answer>

The information block is the env's text (capped and neutralised exactly as the env does it), so it
is masked out of the loss, like env tokens in GRPO: :func:`tokenize_trajectory` builds
``completion_mask`` (1 = router tokens and the final EOS, 0 = prompt and information block), which
``SFTTrainer(completion_only_loss=True)`` turns into ``-100`` labels. Questions no candidate answers
are left out (their trajectory would teach a wrong answer).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envs.router_r1_protocol import (
    TokenCounter,
    direct_request,
    information_block,
    sub_query,
    truncate_tokens,
    whitespace_tokens,
)
from rewards.format import RouterR1Format
from rewards.outcome import reply_score
from rl_router.pool.types import CandidatePool, ModelDescriptor

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from rl_router.trainers.grpo import GRPOTrainerConfig

log = logging.getLogger(__name__)

THINK_ROUTE = "{model} is the cheapest candidate likely to know this, so I will ask it."
THINK_ROUTE_ANY = "{model} is likely to know this, so I will ask it."
# How the warm start picks a question's route among the candidates whose reply states a golden answer:
# "cheapest": only the cheapest (the warm start is the oracle's routing, near-deterministic after a few
# dozen steps, so GRPO's groups all route alike and the route gets no gradient); "every_correct": one
# trajectory per such candidate (the warm start teaches the protocol and leaves the route less
# certain where several candidates answer; on the tiny bench its SmolLM2 share of capitals was 0.20,
# still too rare for GRPO's groups, which is what trainer.explore_routes is for).
SFT_ROUTES = ("cheapest", "every_correct")
# A candidate failing on more than this share of the warm start's questions stops it (check_candidate_errors)
MAX_ERROR_SHARE = 0.5
THINK_ANSWER = "The information answers the question."


@dataclass(frozen=True)
class SFTTrajectory:
    """One synthesised episode: the router's prompt and its completion, split into segments.

    Attributes:
        question_id: The row's id.
        prompt: The router's prompt messages (``role`` / ``content``).
        segments: ``(text, trained)`` pairs: router text (trained) and env text (masked).
        model: The candidate routed to.
        answer: The final answer.
    """

    question_id: str
    prompt: tuple[Mapping[str, str], ...]
    segments: tuple[tuple[str, bool], ...]
    model: str
    answer: str

    @property
    def completion(self) -> str:
        """The completion as the router sees it (router turns and information blocks)."""
        return "".join(text for text, _ in self.segments)


def route_opening(model: str, routes: str = "cheapest") -> str:
    """The start of a warm-start trajectory that routes to ``model``, up to its ``<search>`` name:
    what GRPO's exploration (``trainer.explore_routes``) forces a sample's first turn to begin with.

    >>> route_opening("fake-small", "every_correct")
    '<think>fake-small is likely to know this, so I will ask it.</think>\\n<search>fake-small:'
    """
    think = THINK_ROUTE if routes == "cheapest" else THINK_ROUTE_ANY
    return f"<think>{think.format(model=model)}</think>\n<search>{model}:"


def route_order(descriptors: Sequence[ModelDescriptor]) -> list[ModelDescriptor]:
    """Candidates cheapest first: output price (Router-R1's charge), then input price, then size."""
    return sorted(descriptors, key=lambda d: (d.price_out, d.price_in, d.params_b))


def stated_answer(reply: str, golden_answers: Sequence[str]) -> str | None:
    """The golden answer a candidate's reply states (:func:`rewards.outcome.reply_score`), or None.

    It is returned as the golden spelling, which equals the reply's span after normalisation.

    >>> stated_answer("The capital of France is Paris.", ["Paris", "City of Light"])
    'Paris'
    >>> stated_answer("5 - 3 = 2", ["5"]) is None
    True
    """
    for answer in golden_answers:
        if str(answer).strip() and reply_score(reply, [str(answer)]) == 1.0:
            return str(answer).strip()
    return None


def synthesize_trajectories(
    pool: CandidatePool,
    rows: Sequence[Mapping[str, Any]],
    count_tokens: TokenCounter = whitespace_tokens,
    *,
    max_routes: int = 4,
    info_token_cap: int = 600,
    routes: str = "cheapest",
) -> list[SFTTrajectory]:
    """Protocol-correct trajectories for the rows some candidate answers (one batched pool call).

    Args:
        pool: The candidate pool the router will route over.
        rows: Training rows (``id``, ``question``, ``golden_answers``).
        count_tokens: The env's token counter behind ``info_token_cap`` (the router tokenizer's).
        max_routes: The env's route limit (stated in the prompt; a trajectory routes once).
        info_token_cap: The env's cap on a reply shown in ``<information>``.
        routes: ``"cheapest"`` or ``"every_correct"`` (:data:`SFT_ROUTES`).

    Returns:
        Per answered row, in row order, its cheapest right candidate's trajectory, or (every_correct)
        one per right candidate, cheapest first; each passes :class:`RouterR1Format`.
    """
    if routes not in SFT_ROUTES:
        raise ValueError(f"trainer.sft_routes={routes!r}: choose one of {SFT_ROUTES}")
    from envs.router_r1_protocol import prompt_messages

    descriptors = list(pool.descriptors)
    rules = RouterR1Format([d.name for d in descriptors], max_routes=max_routes)
    requests = [direct_request(d.name, row) for row in rows for d in descriptors]
    results = pool.generate(requests)
    column = {d.name: j for j, d in enumerate(descriptors)}
    check_candidate_errors(descriptors, results, len(rows))
    out = []
    for k, row in enumerate(rows):
        golden = [str(g) for g in row["golden_answers"]]
        for d in route_order(descriptors):
            result = results[k * len(descriptors) + column[d.name]]
            answer = stated_answer(result.text, golden) if result.ok else None
            if answer is None:
                continue
            shown = truncate_tokens(result.text, info_token_cap, count_tokens)
            route = f"{route_opening(d.name, routes)} {sub_query(row)}</search>"
            trajectory = SFTTrajectory(
                question_id=str(row["id"]),
                prompt=tuple(prompt_messages(row, descriptors, max_routes)),
                segments=(
                    (route, True),
                    (information_block(shown), False),
                    (f"<think>{THINK_ANSWER}</think>\n<answer>{answer}</answer>", True),
                ),
                model=d.name,
                answer=answer,
            )
            if not rules.violations(trajectory.completion):  # e.g. a question holding a protocol tag
                out.append(trajectory)
            if routes == "cheapest":
                break
    return out


def check_candidate_errors(
    descriptors: Sequence[ModelDescriptor], results: Sequence[Any], n_rows: int
) -> dict[str, int]:
    """Failed calls per candidate among the warm start's (row-major, one per row and candidate).

    A candidate whose calls fail on more than :data:`MAX_ERROR_SHARE` of the questions would leave
    the warm start without its routes (it would quietly learn never to ask it), so that is an error;
    fewer failures are logged. Returns the failure count per candidate.

    Raises:
        RuntimeError: A candidate failed on more than ``MAX_ERROR_SHARE`` of the questions (names it,
            with its first error).
    """
    errors = {d.name: 0 for d in descriptors}
    first: dict[str, str] = {}
    for i, result in enumerate(results):
        if not result.ok:
            name = descriptors[i % len(descriptors)].name
            errors[name] += 1
            first.setdefault(name, str(result.error))
    for name, count in errors.items():
        if count > MAX_ERROR_SHARE * n_rows:
            raise RuntimeError(
                f"SFT warm start: candidate {name} failed on {count} of {n_rows} questions (first error: "
                f"{first[name]}); the warm start would never route to it. Check the pool (an engine that "
                "died or timed out, e.g. with other jobs on the cores) and run again"
            )
        if count:
            log.warning("SFT warm start: candidate %s failed on %d of %d questions", name, count, n_rows)
    return errors


def write_trajectories(path: Path, trajectories: Sequence[SFTTrajectory]) -> None:
    """Record what the warm start imitates: one JSON line per trajectory (question id, candidate routed
    to, final answer), so a run shows which routes its warm start learnt.

    >>> import tempfile
    >>> t = SFTTrajectory("capitals/0", (), (("<answer>Paris</answer>", True),), "small", "Paris")
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_trajectories(Path(d) / "t.jsonl", [t])
    ...     (Path(d) / "t.jsonl").read_text().splitlines()
    ['{"id": "capitals/0", "model": "small", "answer": "Paris"}']
    """
    rows = ({"id": t.question_id, "model": t.model, "answer": t.answer} for t in trajectories)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def tokenize_trajectory(
    tokenizer: PreTrainedTokenizerBase, trajectory: SFTTrajectory
) -> dict[str, list[int]]:
    """``input_ids`` and ``completion_mask`` of one trajectory, tokenised as the GRPO rollout does.

    The prompt goes through the chat template (with the assistant header); each segment is
    tokenised on its own, as a rollout concatenates router turns and env blocks; an EOS ends it.
    ``completion_mask`` is 1 on router tokens and the EOS, 0 on the prompt and on env text.
    """
    from rl_router.generation import chat_prompt_ids

    ids = chat_prompt_ids(tokenizer, trajectory.prompt)
    mask = [0] * len(ids)
    for text, trained in trajectory.segments:
        segment = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += segment
        mask += [int(trained)] * len(segment)
    return {"input_ids": ids + [tokenizer.eos_token_id], "completion_mask": mask + [1]}


def sft_dataset(tokenizer: PreTrainedTokenizerBase, trajectories: Sequence[SFTTrajectory]) -> Dataset:
    """A pre-tokenised dataset (``input_ids``, ``completion_mask``) for ``SFTTrainer``."""
    import datasets

    return datasets.Dataset.from_list([tokenize_trajectory(tokenizer, t) for t in trajectories])


def sft_trainer(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    output_dir: Path,
    cfg: GRPOTrainerConfig,
) -> Any:
    """TRL's ``SFTTrainer`` with a completion-only loss over :func:`sft_dataset` rows.

    Args:
        model: A model path (loaded with ``cfg.dtype``) or a model object.
        tokenizer: The router's tokenizer.
        dataset: From :func:`sft_dataset`.
        output_dir: TRL's working directory (nothing is checkpointed).
        cfg: ``sft_steps``, ``sft_lr``, ``sft_batch_size``, device and seed settings.
    """
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(output_dir),
        max_steps=cfg.sft_steps,
        per_device_train_batch_size=cfg.sft_batch_size,
        learning_rate=cfg.sft_lr,
        lr_scheduler_type="constant",
        completion_only_loss=True,
        max_length=None,  # a cut trajectory would lose its answer
        model_init_kwargs={"dtype": cfg.dtype} if isinstance(model, str) else None,
        use_cpu=cfg.use_cpu,
        bf16=cfg.bf16,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=not cfg.progress,
        seed=cfg.seed,
        dataloader_num_workers=0,
    )
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


def warm_start(
    model_path: str,
    tokenizer: PreTrainedTokenizerBase,
    trajectories: Sequence[SFTTrajectory],
    out_dir: Path,
    cfg: GRPOTrainerConfig,
    logger: Any = None,
) -> list[float]:
    """Fine-tune the router on ``trajectories`` and save it (weights + tokenizer) into ``out_dir``.

    The folder appears complete or not at all (written beside it, then renamed).

    Returns:
        The training loss of every step (also logged as ``sft/loss``).

    Raises:
        ValueError: No trajectories (no candidate answered any training question).
    """
    if not trajectories:
        raise ValueError(
            "no SFT trajectories: no candidate's reply states a golden answer of any training question; "
            "check the pool and data, or set trainer.sft_steps=0"
        )
    work = out_dir.parent / f".sft-work-{uuid.uuid4().hex[:8]}"
    trainer = sft_trainer(model_path, tokenizer, sft_dataset(tokenizer, trajectories), work, cfg)
    trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    if logger is not None:
        for step, loss in enumerate(losses, start=1):
            logger.log({"sft/loss": loss}, step)
    tmp = out_dir.parent / f".tmp-{out_dir.name}-{uuid.uuid4().hex[:8]}"
    try:
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return losses
