"""Routing tables: per query and candidate model, the recorded outcome (score, response, tokens).

A routing table is the data of a replay pool and of offline router benchmarks: the router picks a
column, the table says how that model did and what it cost. Tables come from recorded outcomes
(RouteLLM's, read by :mod:`rl_router.data.routellm`) or from a live pool
(:mod:`rl_router.rollout.live_table`); this module knows neither source.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np


# eq=False: field-wise == would compare numpy arrays, whose truth value is ambiguous.
@dataclass(eq=False)
class RoutingTable:
    """Recorded outcomes of ``m`` models on ``n`` queries.

    Attributes:
        name: Table name (e.g. ``"routellm/gsm8k+mmlu"``).
        models: Column order, e.g. ``["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]``.
        ids: Stable, unique row ids, e.g. ``"gsm8k/0012"``, ``"mmlu/anatomy/0003"``.
        prompts: The query text of each row.
        sources: Benchmark (and subject) of each row: ``"gsm8k"``, ``"mmlu/anatomy"``, ...
        scores: float32 ``[n, m]`` correctness 0/1, or a judge score scaled to [0, 1].
        responses: ``[n][m]`` recorded response text; None where not recorded.
        input_tokens: int64 ``[n, m]`` prompt tokens sent to each model.
        output_tokens: int64 ``[n, m]`` tokens each model generated (estimated where no response).
    """

    name: str
    models: list[str]
    ids: list[str]
    prompts: list[str]
    sources: list[str]
    scores: np.ndarray
    responses: list[list[str | None]]
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    _row_of_id: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n, m = len(self.ids), len(self.models)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n, m)
        self.input_tokens = np.asarray(self.input_tokens, dtype=np.int64).reshape(n, m)
        self.output_tokens = np.asarray(self.output_tokens, dtype=np.int64).reshape(n, m)
        if len(self.prompts) != n or len(self.sources) != n or len(self.responses) != n:
            raise ValueError(
                f"table {self.name!r}: {n} ids but {len(self.prompts)} prompts, "
                f"{len(self.sources)} sources, {len(self.responses)} response rows"
            )
        if any(len(row) != m for row in self.responses):
            raise ValueError(f"table {self.name!r}: every response row needs {m} entries (one per model)")
        if not np.all((self.scores >= 0.0) & (self.scores <= 1.0)):
            raise ValueError(f"table {self.name!r}: scores must lie in [0, 1] (NaN is not allowed)")
        self._row_of_id = {query_id: i for i, query_id in enumerate(self.ids)}
        if len(self._row_of_id) != n:
            raise ValueError(f"table {self.name!r}: row ids are not unique")

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices: Sequence[int] | np.ndarray) -> RoutingTable:
        """The rows at ``indices`` (integer positions), in that order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return RoutingTable(
            name=self.name,
            models=list(self.models),
            ids=[self.ids[i] for i in idx],
            prompts=[self.prompts[i] for i in idx],
            sources=[self.sources[i] for i in idx],
            scores=self.scores[idx],
            responses=[list(self.responses[i]) for i in idx],
            input_tokens=self.input_tokens[idx],
            output_tokens=self.output_tokens[idx],
        )

    def split(self, test_fraction: float, seed: int) -> tuple[RoutingTable, RoutingTable]:
        """Deterministic train/test split, stratified by source; rows keep table order.

        Each source's rows are permuted by a generator seeded with ``(seed, crc32(source))`` and its
        first ``round(test_fraction * n_source)`` rows go to test. Seeding per source means adding
        or removing a benchmark does not move the rows of the others between train and test.

        Args:
            test_fraction: Share of each source held out, in (0, 1).
            seed: Split seed.

        Returns:
            ``(train, test)``, disjoint, together all rows.
        """
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction={test_fraction}: use a value strictly between 0 and 1")
        sources = np.asarray(self.sources, dtype=object)
        is_test = np.zeros(len(self), dtype=bool)
        for source in sorted(set(self.sources)):
            rows = np.flatnonzero(sources == source)
            rng = np.random.default_rng([seed, zlib.crc32(source.encode())])
            n_test = round(test_fraction * len(rows))
            is_test[rng.permutation(rows)[:n_test]] = True
        return self.subset(np.flatnonzero(~is_test)), self.subset(np.flatnonzero(is_test))

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a dict; per-model values are keyed by model name."""
        return {
            "id": self.ids[i],
            "prompt": self.prompts[i],
            "source": self.sources[i],
            "scores": {m: float(self.scores[i, j]) for j, m in enumerate(self.models)},
            "responses": {m: self.responses[i][j] for j, m in enumerate(self.models)},
            "input_tokens": {m: int(self.input_tokens[i, j]) for j, m in enumerate(self.models)},
            "output_tokens": {m: int(self.output_tokens[i, j]) for j, m in enumerate(self.models)},
        }

    def index_of(self, query_id: str) -> int:
        """Row position of ``query_id``; KeyError when the table has no such row."""
        try:
            return self._row_of_id[query_id]
        except KeyError:
            raise KeyError(f"query id {query_id!r} is not in routing table {self.name!r}") from None

    def to_dataset(self) -> datasets.Dataset:
        """The table as a ``datasets.Dataset``: one row per query, per-model lists in ``models`` order.

        Columns: ``id``, ``prompt``, ``source``, ``scores`` (float32 list), ``responses`` (string list,
        None where not recorded), ``input_tokens``, ``output_tokens`` (int64 lists). The model order
        is also stored in ``dataset.info.description`` as JSON (``{"models": [...]}``).
        """
        features = datasets.Features(
            {
                "id": datasets.Value("string"),
                "prompt": datasets.Value("string"),
                "source": datasets.Value("string"),
                "scores": datasets.List(datasets.Value("float32")),
                "responses": datasets.List(datasets.Value("string")),
                "input_tokens": datasets.List(datasets.Value("int64")),
                "output_tokens": datasets.List(datasets.Value("int64")),
            }
        )
        columns = {
            "id": self.ids,
            "prompt": self.prompts,
            "source": self.sources,
            "scores": self.scores.tolist(),
            "responses": self.responses,
            "input_tokens": self.input_tokens.tolist(),
            "output_tokens": self.output_tokens.tolist(),
        }
        description = json.dumps({"name": self.name, "models": self.models})
        info = datasets.DatasetInfo(description=description, features=features)
        return datasets.Dataset.from_dict(columns, features=features, info=info)

    def accuracy(self) -> dict[str, float]:
        """Mean score of each model over all rows."""
        means = self.scores.mean(axis=0) if len(self) else np.full(len(self.models), np.nan)
        return {m: float(means[j]) for j, m in enumerate(self.models)}


def concat_tables(tables: Sequence[RoutingTable], name: str) -> RoutingTable:
    """Rows of several tables with the same models (columns reordered to the first table's)."""
    models = list(tables[0].models)
    parts = []
    for table in tables:
        if sorted(table.models) != sorted(models):
            raise ValueError(
                f"table {table.name!r} has models {table.models}, {tables[0].name!r} has {models}: "
                "a routing table needs the same models on every benchmark"
            )
        order = [table.models.index(m) for m in models]
        parts.append((table, order))
    return RoutingTable(
        name=name,
        models=models,
        ids=[i for t, _ in parts for i in t.ids],
        prompts=[p for t, _ in parts for p in t.prompts],
        sources=[s for t, _ in parts for s in t.sources],
        scores=np.concatenate([t.scores[:, o] for t, o in parts]).reshape(-1, len(models)),
        responses=[[row[j] for j in o] for t, o in parts for row in t.responses],
        input_tokens=np.concatenate([t.input_tokens[:, o] for t, o in parts]).reshape(-1, len(models)),
        output_tokens=np.concatenate([t.output_tokens[:, o] for t, o in parts]).reshape(-1, len(models)),
    )
