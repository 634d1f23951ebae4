"""The parts of a GRPO run both GRPO recipes share: where a crashed run resumes, and TRL's train-and-save.

``recipes/llm_router_grpo.py`` (Router-R1 routers) and ``recipes/agent_steps_grpo.py`` (agent_steps
tier routers) differ in their envs, data, rewards and evaluation; the TRL side of a run is the same:

* :func:`resume_point` -- the newest TRL checkpoint of a resumed run, with ``metrics.jsonl`` and
  ``rollouts.jsonl`` cut back to its step (the warm start's ``sft/loss`` rows stay), so the logs of a
  run killed between checkpoints hold each step once;
* :func:`train_and_save` -- ``GRPOTrainer`` over the recipe's ``rollout_func``, trained (from the
  resume point) and saved with its tokenizer as the run's ``router/`` folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rl_router.run import METRICS, ROLLOUTS, ROUTER_DIR, trim_jsonl
from rl_router.trainers.grpo import TRLRollout, metrics_callback

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from rl_router.trainers.grpo import GRPOTrainerConfig

CHECKPOINTS = "checkpoints"  # TRL's checkpoint-<step> folders, inside the run directory


@dataclass
class TrainedGRPO:
    """What :func:`train_and_save` leaves: TRL's trainer, the saved ``router/`` folder, the logged rows."""

    trainer: Any
    router_dir: Path
    history: list[dict[str, Any]]

    @property
    def model(self) -> Any:
        """The trained router in eval mode (unwrapped from accelerate)."""
        return self.trainer.accelerator.unwrap_model(self.trainer.model).eval()

    @property
    def step(self) -> int:
        """GRPO optimizer steps done (those of the run it resumed included)."""
        return int(self.trainer.state.global_step)


def resume_point(run_dir: Path, resumed: bool) -> str | None:
    """The newest ``checkpoint-<step>`` of a resumed run (None: a fresh run, or none saved yet).

    A checkpoint found cuts the run's metric and rollout logs back to its step.
    """
    from transformers.trainer_utils import get_last_checkpoint

    output_dir = run_dir / CHECKPOINTS
    last = get_last_checkpoint(str(output_dir)) if resumed and output_dir.is_dir() else None
    if last is not None:
        step = int(Path(last).name.rsplit("-", 1)[1])
        trim_jsonl(run_dir / METRICS, step, keep=lambda row: "sft/loss" in row)  # SFT rows stay
        trim_jsonl(run_dir / ROLLOUTS, step)
    return last


def train_and_save(
    trainer_cfg: GRPOTrainerConfig,
    run_dir: Path,
    *,
    model_path: str,
    tokenizer: PreTrainedTokenizerBase,
    rollout: TRLRollout,
    reward_funcs: Sequence[Callable[..., Any]],
    args: Any,
    train_dataset: Dataset,
    model_names: Sequence[str],
    logger: Any,
    resume: str | None,
) -> TrainedGRPO:
    """Train TRL's ``GRPOTrainer`` and save the router.

    Args:
        trainer_cfg: ``progress`` and ``log_rollouts`` are read here.
        run_dir: The run directory (``router/`` and ``rollouts.jsonl`` go here).
        model_path: The model GRPO starts from (the warm start's folder, or the base model).
        tokenizer: The router's tokenizer (saved beside the weights).
        rollout: The ``rollout_func`` (it also holds the cost window and the budget's ``lam``).
        reward_funcs: From :func:`rl_router.trainers.grpo.reward_functions`.
        args: TRL's ``GRPOConfig`` (:func:`rl_router.trainers.grpo.grpo_args`).
        train_dataset: The prompts TRL samples groups from.
        model_names: The candidates (or tiers), for the per-model metrics.
        logger: Where metric rows go.
        resume: A checkpoint to resume from (:func:`resume_point`), or None.

    Returns:
        The trainer, the saved router's folder and every logged metric row.
    """
    from trl import GRPOTrainer

    rollouts_path = run_dir / ROLLOUTS if trainer_cfg.log_rollouts else None
    bridge = metrics_callback(rollout, model_names, logger, trainer_cfg.progress, rollouts_path)
    trainer = GRPOTrainer(
        model=model_path,
        reward_funcs=list(reward_funcs),
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        rollout_func=rollout,
        callbacks=[bridge],
    )
    trainer.train(resume_from_checkpoint=resume)
    router_dir = run_dir / ROUTER_DIR
    trainer.save_model(str(router_dir))
    tokenizer.save_pretrained(str(router_dir))
    return TrainedGRPO(trainer, router_dir, bridge.history)
