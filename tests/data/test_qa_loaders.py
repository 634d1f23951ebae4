"""Local-file and FlashRAG (Router-R1 benchmarks) loaders, on files written to tmp_path. No network."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rl_router.data.qa import (
    QALocalDataConfig,
    RouterR1DataConfig,
    load_flashrag,
    load_qa_file,
    load_router_r1_benchmarks,
)
from rl_router.data.schema import QA_FEATURES, QAExample


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _flashrag_rows(name: str, n: int) -> list[dict]:
    return [
        {
            "id": f"test_{i}",
            "question": f"{name} question {i}?",
            "golden_answers": [f"answer {i}", f"alias {i}"],
            "metadata": {"hops": i % 3},
        }
        for i in range(n)
    ]


def test_jsonl_with_column_mapping_and_extra_columns(tmp_path):
    path = _write_jsonl(
        tmp_path / "mine.jsonl",
        [{"qid": 7, "q": "2+2?", "ans": "4", "level": "easy"}, {"qid": 8, "q": "3+3?", "ans": ["6", "six"]}],
    )
    dataset = load_qa_file(
        path, question_field="q", answer_field="ans", id_field="qid", cache_dir=str(tmp_path)
    )
    assert dataset.features == QA_FEATURES
    first, second = (QAExample.from_row(row) for row in dataset)
    assert (first.id, first.question, first.golden_answers, first.source) == ("mine/7", "2+2?", ["4"], "mine")
    assert first.metadata == {"level": "easy"}
    assert second.golden_answers == ["6", "six"]


def test_parquet_and_csv_give_the_same_examples(tmp_path):
    frame = pd.DataFrame(
        {"question": ["Capital of France?", "Capital of Peru?"], "answer": ["Paris", "Lima"]}
    )
    frame.to_parquet(tmp_path / "caps.parquet")
    frame.assign(answer=['["Paris", "Paree"]', "Lima"]).to_csv(tmp_path / "caps.csv", index=False)
    from_parquet = load_qa_file(tmp_path / "caps.parquet", answer_field="answer", cache_dir=str(tmp_path))
    from_csv = load_qa_file(tmp_path / "caps.csv", answer_field="answer", cache_dir=str(tmp_path))
    assert from_parquet["id"] == ["caps/0", "caps/1"] == from_csv["id"]
    assert from_parquet["golden_answers"] == [["Paris"], ["Lima"]]
    assert from_csv["golden_answers"] == [["Paris", "Paree"], ["Lima"]]  # JSON list in a CSV cell


def test_bad_rows_skipped_then_limit(tmp_path):
    rows = [{"question": f"q{i}", "golden_answers": [] if i == 1 else ["a"]} for i in range(5)]
    dataset = load_qa_file(_write_jsonl(tmp_path / "f.jsonl", rows), limit=3, cache_dir=str(tmp_path))
    assert dataset["question"] == ["q0", "q2", "q3"]


def test_mostly_unanswered_file_is_refused(tmp_path):
    rows = [{"question": f"q{i}", "golden_answers": ["a"] if i == 0 else []} for i in range(3)]
    with pytest.raises(ValueError, match=r"f\.jsonl: 2 of 3 rows .* row 1"):
        load_qa_file(_write_jsonl(tmp_path / "f.jsonl", rows), cache_dir=str(tmp_path))


def test_missing_column_and_unknown_suffix_are_explained(tmp_path):
    path = _write_jsonl(tmp_path / "f.jsonl", [{"question": "q", "answers": ["a"]}])
    with pytest.raises(ValueError, match="no column 'golden_answers'"):
        load_qa_file(path, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="unknown file type"):
        load_qa_file(tmp_path / "f.txt")


def test_shipped_sample_loads_by_default(tmp_path):
    dataset = load_qa_file(cache_dir=str(tmp_path))
    assert len(dataset) == 30
    assert dataset[0]["question"] == "What is the capital of France?"
    assert dataset[0]["golden_answers"] == ["Paris"]


def test_flashrag_local_mirror_takes_the_hub_code_path(tmp_path):
    mirror = tmp_path / "FlashRAG_datasets"
    _write_jsonl(mirror / "nq" / "test.jsonl", _flashrag_rows("nq", 20))
    _write_jsonl(mirror / "hotpotqa" / "dev.jsonl", _flashrag_rows("hotpotqa", 4))
    nq = load_flashrag("nq", local_dir=mirror, limit=5, seed=0, cache_dir=str(tmp_path / "cache"))
    again = load_flashrag("nq", local_dir=mirror, limit=5, seed=0, cache_dir=str(tmp_path / "cache"))
    assert len(nq) == 5 and nq["id"] == again["id"]  # seeded sample
    assert nq["id"] != [f"nq/test_{i}" for i in range(5)]  # a sample, not the head
    row = QAExample.from_row(nq[0])
    index = int(row.id.split("_")[-1])
    assert row.golden_answers == [f"answer {index}", f"alias {index}"]
    assert row.metadata == {"hops": index % 3}  # FlashRAG's metadata merged, not nested
    # default split: Router-R1 evaluates hotpotqa on dev (FlashRAG has no hotpotqa test split)
    mixed = load_router_r1_benchmarks(["nq", "hotpotqa"], local_dir=mirror, limit=3, cache_dir=str(tmp_path))
    assert mixed["source"] == ["nq"] * 3 + ["hotpotqa"] * 3


def test_flashrag_needs_a_split_for_unknown_benchmarks(tmp_path):
    with pytest.raises(ValueError, match="no default split for 'asqa'"):
        load_flashrag("asqa", local_dir=tmp_path)


def test_configs_reject_bad_values_with_the_fix():
    with pytest.raises(ValueError, match=r"data.path='x.txt'"):
        QALocalDataConfig(path="x.txt")
    assert QALocalDataConfig(path="x.jsonl.gz").path == "x.jsonl.gz"
    with pytest.raises(ValueError, match="set data.split"):
        RouterR1DataConfig(benchmarks=["asqa"])
    with pytest.raises(ValueError, match="use train, dev, test"):
        RouterR1DataConfig(split="validation")
