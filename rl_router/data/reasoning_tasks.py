"""Verifiable reasoning tasks from ``reasoning-gym``, mixed into one QA dataset.

Each task is generated with ``reasoning_gym.create_dataset(name, size=, seed=, **difficulty)``. A row
keeps in ``metadata`` everything needed to score an answer later with the task's own verifier
(:func:`score_answer`): the task name, the exact config it was generated with, and the entry's
metadata. ``golden_answers`` is the entry's ``answer``; exact match against it is a lower bound,
since some tasks accept several answers (the verifier knows which).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np

from rl_router.data.schema import QAExample, decode_metadata, to_dataset, validate_examples

SOURCE_PREFIX = "reasoning_gym"


@dataclass
class ReasoningGymTask:
    """One task of a mixture."""

    name: str  # a registered reasoning-gym dataset, e.g. "basic_arithmetic"
    size: int = 100  # entries to generate
    difficulty: dict[str, Any] = field(default_factory=dict)  # the task's config knobs, e.g. max_terms


def load_reasoning_gym(
    tasks: Sequence[ReasoningGymTask | Mapping[str, Any]], *, seed: int = 0, shuffle: bool = True
) -> datasets.Dataset:
    """Generate a mixture of reasoning-gym tasks.

    Task ``i`` is generated with seed ``seed + i`` (distinct streams per task; note that reordering
    tasks therefore changes their entries). Row metadata: ``task``, ``task_config`` (the kwargs of
    ``create_dataset`` besides the name), ``difficulty`` and ``entry`` (the entry's own metadata).

    Args:
        tasks: The tasks (dataclasses or mappings with ``name``, ``size``, ``difficulty``).
        seed: Base seed of the generators and of the shuffle.
        shuffle: Interleave the tasks with a seeded permutation (else task after task).

    Returns:
        The examples; ids ``"reasoning_gym/<task>/<index>"``, source ``"reasoning_gym/<task>"``.

    Raises:
        ValueError: No task, a task listed twice, a non-positive size, or an unknown task or knob
            (reasoning-gym's own message).
    """
    import reasoning_gym  # slow import (registers ~100 tasks); only when this loader is used

    specs = [_as_task(task) for task in tasks]
    names = [spec.name for spec in specs]
    if not specs or len(set(names)) != len(names):
        raise ValueError(f"tasks={names}: list at least one task, each name once")
    examples: list[QAExample] = []
    for offset, spec in enumerate(specs):
        if spec.size <= 0:
            raise ValueError(f"task {spec.name!r}: size={spec.size}, use a positive count")
        task_config = {"size": spec.size, "seed": seed + offset, **spec.difficulty}
        try:
            generator = reasoning_gym.create_dataset(spec.name, **task_config)
        except (TypeError, AssertionError) as error:  # unknown knob / failed config validation
            raise ValueError(f"reasoning-gym task {spec.name!r} with {task_config}: {error}") from error
        source = f"{SOURCE_PREFIX}/{spec.name}"
        for index, entry in enumerate(generator):
            examples.append(
                QAExample(
                    id=f"{source}/{index:05d}",
                    question=entry["question"],
                    golden_answers=[str(entry["answer"])] if entry["answer"] is not None else [],
                    source=source,
                    metadata={
                        "task": spec.name,
                        "task_config": task_config,
                        "difficulty": spec.difficulty,
                        "entry": entry["metadata"],
                    },
                )
            )
    kept = validate_examples(examples, f"reasoning-gym mixture {names}")
    if shuffle:
        kept = [kept[i] for i in np.random.default_rng(seed).permutation(len(kept))]
    return to_dataset(kept)


def score_answer(prediction: str | None, example: QAExample | Mapping[str, Any]) -> float:
    """Score a prediction with the verifier of the example's reasoning-gym task.

    Args:
        prediction: The extracted final answer (None scores 0 for most tasks).
        example: A :class:`QAExample` or a dataset row produced by :func:`load_reasoning_gym`.

    Returns:
        The task's score in [0, 1] (1.0 for the gold answer).
    """
    if isinstance(example, QAExample):
        metadata, question, answers = example.metadata, example.question, example.golden_answers
    else:
        metadata, question, answers = decode_metadata(example), example["question"], example["golden_answers"]
    verifier = _task_generator(metadata["task"], json.dumps(metadata["task_config"], sort_keys=True))
    entry = {"question": question, "answer": answers[0] if answers else None, "metadata": metadata["entry"]}
    return float(verifier.score_answer(answer=prediction, entry=entry))


@functools.lru_cache(maxsize=64)
def _task_generator(name: str, task_config_json: str) -> Any:
    """The task's dataset object (holder of ``score_answer``), rebuilt from its config once."""
    import reasoning_gym

    return reasoning_gym.create_dataset(name, **json.loads(task_config_json))


def _as_task(task: ReasoningGymTask | Mapping[str, Any]) -> ReasoningGymTask:
    """Accept dataclasses and mappings (plain dicts or Hydra's DictConfig) alike."""
    if isinstance(task, ReasoningGymTask):
        return ReasoningGymTask(task.name, task.size, _plain(task.difficulty))
    return ReasoningGymTask(
        name=str(task["name"]), size=int(task.get("size", 100)), difficulty=_plain(task.get("difficulty", {}))
    )


def _plain(value: Any) -> Any:
    """Hydra containers to plain dicts/lists, so reasoning-gym configs get ordinary values."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(item) for item in value]
    return value


@dataclass
class ReasoningGymDataConfig:
    """A reasoning-gym task mixture (``conf/data/reasoning_gym.yaml``)."""

    _target_: str = "rl_router.data.reasoning_tasks.load_reasoning_gym"
    tasks: list[ReasoningGymTask] = field(
        default_factory=lambda: [
            ReasoningGymTask("basic_arithmetic", 200, {"min_terms": 2, "max_terms": 3, "max_digits": 2}),
            ReasoningGymTask("chain_sum", 200, {"min_terms": 2, "max_terms": 4}),
        ]
    )  # name, size and difficulty knobs of each task
    seed: int = 0  # base seed of the generators (task i uses seed + i) and of the shuffle
    shuffle: bool = True  # interleave tasks; false keeps them in blocks

    def __post_init__(self) -> None:
        self.tasks = [_as_task(task) for task in self.tasks]
        names = [task.name for task in self.tasks]
        if not names:
            raise ValueError("data.tasks is empty: add e.g. {name: chain_sum, size: 100, difficulty: {}}")
        if len(set(names)) != len(names):
            raise ValueError(f"data.tasks lists a task twice ({names}): merge them or change one's name")
        bad = [task.name for task in self.tasks if task.size <= 0]
        if bad:
            raise ValueError(f"data.tasks {bad}: set size to a positive count")
