"""Offline fixtures for the GRPO / SFT tests: a tiny tokenizer, a random tiny Llama, a fake pool, a
scripted router.

The tokenizer is a byte-level BPE trained in-process on protocol strings, so any text encodes and
decodes exactly, with an EOS, a pad token and a chat template; nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from envs.router_r1_protocol import PROMPT_TEMPLATE
from rewards.cost import PercentileCostNormalizer
from rl_router.generation import Segment
from rl_router.pool import ModelConfig, PoolConfig, build_pool
from rl_router.pool.fake import FakeOptions

EOS, PAD = "<|eos|>", "<|pad|>"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
ROWS = [
    {"id": "capitals/0", "question": "What is the capital of France?", "golden_answers": ["Paris"]},
    {"id": "math/0", "question": "What is six times seven?", "golden_answers": ["42"]},
    {"id": "capitals/1", "question": "What is the capital of Peru?", "golden_answers": ["Lima"]},
]
ROUTE_SMALL = "<think>Ask the small one.</think>\n<search>fake-small: {q}</search>"
ROUTE_LARGE = "<think>Ask the large one.</think>\n<search>fake-large: {q}</search>"
ANSWER = "<think>Got it.</think>\n<answer>{a}</answer>"


def tiny_tokenizer():
    """A byte-level BPE tokenizer (vocab ~400) with EOS, pad and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [
        PROMPT_TEMPLATE,
        ROUTE_SMALL,
        ROUTE_LARGE,
        ANSWER,
        "<information></information> fake-small fake-large Paris 42 Lima",
        *(row["question"] for row in ROWS),
    ]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=[PAD, EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus * 3, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_model(tokenizer, seed: int = 0):
    """A randomly initialised 2-layer Llama (hidden 32) over ``tokenizer``'s vocabulary."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def fake_pool_config() -> PoolConfig:
    """fake-small always answers "Paris" ($0.1/1M), fake-large always "42" ($1/1M)."""
    return PoolConfig(
        models=[
            ModelConfig(
                name="fake-small",
                backend="fake",
                price_in=0.1,
                price_out=0.1,
                fake=FakeOptions(answers=["Paris"]),
            ),
            ModelConfig(
                name="fake-large",
                backend="fake",
                price_in=1.0,
                price_out=1.0,
                fake=FakeOptions(answers=["42"]),
            ),
        ],
        cache=False,
    )


class CountingPool:
    """A pool proxy that counts ``generate`` calls (the env contract: one call per turn)."""

    def __init__(self, pool) -> None:
        self.pool = pool
        self.calls: list[int] = []

    @property
    def descriptors(self):
        return self.pool.descriptors

    def generate(self, requests):
        self.calls.append(len(requests))
        return self.pool.generate(requests)

    def close(self) -> None:
        self.pool.close()


def fake_pool() -> CountingPool:
    return CountingPool(build_pool(fake_pool_config()))


def warm_normalizer() -> PercentileCostNormalizer:
    normalizer = PercentileCostNormalizer(window=100)
    normalizer.update([1e-7, 1e-6, 1e-5])
    return normalizer


def env_factory(pool, tokenizer, normalizer: PercentileCostNormalizer | None = None, outcome: str = "em"):
    """``make_env(rows)`` as the recipes build it (the one env factory): one shared cost normaliser."""
    from rl_router.generation import token_counter
    from rl_router.rollout.env_factory import env_factory as make_factory

    return make_factory(
        {"mode": "multi_round", "outcome": outcome},
        pool=pool,
        normalizer=normalizer or warm_normalizer(),
        count_tokens=token_counter(tokenizer),
    )


def grpo_env_factory(pool, tokenizer, outcome: str = "em"):
    """``make_env(rows)`` as the GRPO recipe builds it: envs that leave the cost term to the bridge."""
    from rl_router.generation import token_counter
    from rl_router.rollout.env_factory import env_factory as make_factory

    return make_factory(
        {"mode": "multi_round", "outcome": outcome},
        pool=pool,
        count_tokens=token_counter(tokenizer),
        defer_cost=True,
    )


class ScriptedRouter:
    """A :class:`~rl_router.trainers.grpo.TurnGenerator` that plays scripted turns.

    ``script(question, turn, k) -> text`` gives each episode's turn: the question is read from the
    context, the turn number from the information blocks after the assistant header, and ``k``
    counts earlier calls for the same question and turn (so a group's samples can differ). Turns
    that end in a stop string report ``"stop"``; ``reason`` overrides that.
    """

    def __init__(self, tokenizer, script, reason: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.script = script
        self.reason = reason
        self.calls: list[int] = []
        self.seen: dict[tuple[str, int], int] = {}

    def __call__(self, contexts: Sequence[list[int]], limits: Sequence[int]) -> list[Segment]:
        self.calls.append(len(contexts))
        out = []
        for context, limit in zip(contexts, limits, strict=True):
            text = self.tokenizer.decode(context)
            question = next(row["question"] for row in ROWS if row["question"] in text)
            turn = text.split("<|assistant|>", 1)[1].count("</information>")  # the prompt mentions the tag
            k = self.seen.get((question, turn), 0)
            self.seen[question, turn] = k + 1
            ids = self.tokenizer(self.script(question, turn, k), add_special_tokens=False)["input_ids"][
                :limit
            ]
            reason = self.reason or (
                "stop" if self.tokenizer.decode(ids).endswith(("</search>", "</answer>")) else "length"
            )
            out.append(Segment(ids, None, reason))
        return out


def route_then_answer(model: str = "fake-small", answer: str = "Paris"):
    """Script: route ``model`` once, then answer ``answer``."""
    route = ROUTE_SMALL if model == "fake-small" else ROUTE_LARGE

    def script(question: str, turn: int, k: int = 0) -> str:
        return route.format(q=question) if turn == 0 else ANSWER.format(a=answer)

    return script


def tiny_data_overrides(tmp_path: Path) -> list[str]:
    """The three ROWS as train and held-out data, and a fake pool that knows Paris (cheap) and 42."""
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return [
        "pool=fake",
        "pool.models.0.fake.answers=[Paris]",
        "pool.models.1.fake.answers=['42']",
        "logger=none",
        "data=qa_local",
        f"data.path={data}",
        f"trainer.eval_data={{_target_:rl_router.data.qa.load_qa_file,path:'{data}'}}",
        "trainer.progress=false",
    ]


# one teaching example: context token ids (not learnt), then text parts, each learnt or not
Example = tuple[list[int], list[tuple[str, bool]]]


def teach(model, tokenizer, sample: Callable[[np.random.Generator], list[Example]], steps: int) -> None:
    """Adam (lr 1e-2) on one padded batch per step: ``sample(rng)`` gives the step's examples; the loss
    covers the learnt parts and a closing EOS. Leaves ``model`` in eval mode."""
    model.train()
    rng = np.random.default_rng(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        seqs, labels = [], []
        for context, parts in sample(rng):
            ids, label = list(context), [-100] * len(context)
            for text, learn in parts:
                part = tokenizer(text, add_special_tokens=False)["input_ids"]
                ids += part
                label += part if learn else [-100] * len(part)
            seqs.append([*ids, tokenizer.eos_token_id])
            labels.append([*label, tokenizer.eos_token_id])
        width = max(map(len, seqs))
        pad = [width - len(x) for x in seqs]
        batch = torch.tensor([x + [tokenizer.pad_token_id] * n for x, n in zip(seqs, pad, strict=True)])
        mask = torch.tensor([[1] * len(x) + [0] * n for x, n in zip(seqs, pad, strict=True)])
        target = torch.tensor([x + [-100] * n for x, n in zip(labels, pad, strict=True)])
        loss = model(input_ids=batch, attention_mask=mask, labels=target).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
