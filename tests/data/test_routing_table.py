"""Routing tables: the shipped RouteLLM copy, decontamination, custom directories, splits, tokens."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rl_router.data.routellm import SHIPPED_DIR, RoutingTableDataConfig, load_routing_table
from rl_router.data.routing_table import RoutingTable

# The original RouteLLM files, beside the repository on the team's machines (absent on a user's).
ORIGINAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "routellm"
MIXTRAL, GPT4 = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


def _contaminated(benchmark: str) -> set[str]:
    lines = (SHIPPED_DIR / benchmark / "contaminated_prompts.jsonl").read_text().splitlines()
    return {json.loads(line)["eval_prompt"] for line in lines}


def test_shipped_copy_loads_gsm8k_and_mmlu(shipped_table):
    assert shipped_table.models == [MIXTRAL, GPT4]
    assert len(shipped_table) == 1307 + 11726
    assert {s.split("/")[0] for s in shipped_table.sources} == {"gsm8k", "mmlu"}
    assert len({s for s in shipped_table.sources if s.startswith("mmlu/")}) == 45
    assert shipped_table.scores.dtype == np.float32 and set(np.unique(shipped_table.scores)) == {0.0, 1.0}
    gsm8k_row = shipped_table.row(shipped_table.index_of("gsm8k/0003"))
    assert gsm8k_row["prompt"].startswith("James decides to run 3 sprints")
    assert gsm8k_row["responses"][GPT4]  # GSM8K responses are recorded
    mmlu_row = shipped_table.row(shipped_table.index_of("mmlu/anatomy/0000"))
    assert mmlu_row["responses"] == {MIXTRAL: None, GPT4: None}  # MMLU responses are not


def test_contaminated_prompts_are_excluded(shipped_table, shipped_table_raw):
    raw_prompts = pd.Series(shipped_table_raw.prompts)
    matches = int(raw_prompts.isin(_contaminated("gsm8k") | _contaminated("mmlu")).sum())
    assert matches == 12 + 5  # every listed prompt occurs in the recorded data
    assert len(shipped_table_raw) - len(shipped_table) == matches
    assert not set(shipped_table.prompts) & (_contaminated("gsm8k") | _contaminated("mmlu"))
    # the first three GSM8K questions are contaminated; ids stay those of the file rows
    assert shipped_table_raw.ids[:4] == ["gsm8k/0000", "gsm8k/0001", "gsm8k/0002", "gsm8k/0003"]
    assert shipped_table.ids[0] == "gsm8k/0003"


def test_accuracy_matches_pandas_recomputation(shipped_table):
    root = ORIGINAL_DIR if ORIGINAL_DIR.is_dir() else SHIPPED_DIR
    frames = [pd.read_csv(f) for f in sorted((root / "mmlu").glob("mmlu_*.csv*"))]
    frames.append(pd.read_csv(next((root / "gsm8k").glob("gsm8k_responses.csv*"))))
    frame = pd.concat(frames)
    frame = frame[~frame["prompt"].isin(_contaminated("gsm8k") | _contaminated("mmlu"))]
    expected = {model: float(frame[model].astype(bool).mean()) for model in (MIXTRAL, GPT4)}
    assert shipped_table.accuracy() == pytest.approx(expected, abs=1e-6)
    assert expected[GPT4] == pytest.approx(0.8089, abs=1e-4)


def test_token_counts_positive_and_response_based(shipped_table):
    assert (shipped_table.input_tokens > 0).all() and (shipped_table.output_tokens > 0).all()
    gsm8k = [i for i, s in enumerate(shipped_table.sources) if s == "gsm8k"]
    mmlu = [i for i, s in enumerate(shipped_table.sources) if s.startswith("mmlu")]
    # input tokens do not depend on the model; GSM8K outputs (worked solutions) are longer than MMLU's
    assert (shipped_table.input_tokens[:, 0] == shipped_table.input_tokens[:, 1]).all()
    assert shipped_table.output_tokens[gsm8k].mean() > 3 * shipped_table.output_tokens[mmlu].mean()


def test_split_is_deterministic_disjoint_and_stratified(shipped_table):
    train, test = shipped_table.split(0.3, seed=0)
    train2, test2 = shipped_table.split(0.3, seed=0)
    _, other_test = shipped_table.split(0.3, seed=1)
    assert test.ids == test2.ids and train.ids == train2.ids
    assert test.ids != other_test.ids
    assert not set(train.ids) & set(test.ids)
    assert len(train) + len(test) == len(shipped_table)
    assert len(test) == pytest.approx(0.3 * len(shipped_table), abs=25)  # rounding per source
    assert sum(s == "gsm8k" for s in test.sources) == round(0.3 * 1307)
    row = test.row(0)
    original = shipped_table.row(shipped_table.index_of(row["id"]))
    assert row == original  # rows move whole


def test_subset_row_index_and_dataset(shipped_table):
    small = shipped_table.subset([5, 2])
    assert small.ids == [shipped_table.ids[5], shipped_table.ids[2]]
    assert small.index_of(shipped_table.ids[2]) == 1
    with pytest.raises(KeyError, match="not in routing table"):
        small.index_of("gsm8k/9999")
    dataset = small.to_dataset()
    assert dataset["id"] == small.ids
    assert dataset[0]["scores"] == small.scores[0].tolist()
    assert dataset[0]["output_tokens"] == small.output_tokens[0].tolist()
    assert json.loads(dataset.info.description)["models"] == [MIXTRAL, GPT4]


def test_limit_is_a_fixed_mixed_subset():
    table = load_routing_table(limit=200)
    assert len(table) == 200 and table.ids == load_routing_table(limit=200).ids
    assert any(s == "gsm8k" for s in table.sources) and any(s.startswith("mmlu") for s in table.sources)


def test_custom_directory_of_csvs(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    pd.DataFrame(
        {
            "prompt": ["1+1?", "2+2?", "3+3?"],
            "weak": [True, False, False],
            "strong": [True, True, False],
            "weak_response": ["2", "5", ""],
            "strong_response": ["The answer is 2", "4", "7"],
        }
    ).to_csv(tmp_path / "gsm8k" / "gsm8k_responses.csv", index=False)
    (tmp_path / "gsm8k" / "contaminated_prompts.jsonl").write_text(json.dumps({"eval_prompt": "2+2?"}) + "\n")
    # a flat file beside the sub-directory: a benchmark without its own directory
    pd.DataFrame({"prompt": ["Q\nA. x\nB. y\nAnswer:"], "strong": [0], "weak": [1]}).to_csv(
        tmp_path / "quiz_easy.csv", index=False
    )
    table = load_routing_table(tmp_path, benchmarks=["gsm8k", "quiz"])
    assert table.models == ["weak", "strong"]
    assert table.ids == ["gsm8k/0000", "gsm8k/0002", "quiz/easy/0000"]
    assert table.scores.tolist() == [[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]]  # quiz columns reordered
    assert table.responses[1] == [None, "7"]  # empty cell: not recorded
    assert table.output_tokens[0].tolist() == [1, 4]
    assert len(load_routing_table(tmp_path, ["gsm8k"], exclude_contaminated=False)) == 3


def test_custom_directory_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no mmlu"):
        load_routing_table(tmp_path, benchmarks=["mmlu"])
    pd.DataFrame({"prompt": ["p"], "m": ["maybe"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"bad\.csv: column 'm' row 0 holds 'maybe'"):
        load_routing_table(tmp_path, benchmarks=["bad"])
    pd.DataFrame({"prompt": ["p"], "other": [True]}).to_csv(tmp_path / "gsm8k.csv", index=False)
    pd.DataFrame({"prompt": ["p"], "m": [True]}).to_csv(tmp_path / "mmlu_x.csv", index=False)
    with pytest.raises(ValueError, match="same models"):
        load_routing_table(tmp_path, benchmarks=["gsm8k", "mmlu"])


def test_mt_bench_judgements_scaled_per_model(tmp_path):
    table = load_routing_table(benchmarks=["mt_bench"])
    assert len(table) == 80 - 8
    assert set(table.models) == {MIXTRAL, GPT4}
    assert ((table.scores >= 0.1) & (table.scores <= 1.0)).all()
    judgements = pd.read_json(SHIPPED_DIR / "mt_bench" / "judgements.jsonl.gz", lines=True)
    qid = int(table.ids[0].split("/")[1])
    expected = judgements[(judgements.question_id == qid) & (judgements.model == GPT4)]["score"].mean() / 10
    assert table.row(0)["scores"][GPT4] == pytest.approx(expected)
    assert all(r is not None for row in table.responses for r in row)


def test_shipped_copy_matches_the_source_files():
    if not ORIGINAL_DIR.is_dir():
        pytest.skip("the original RouteLLM files are not on this machine")
    for shipped in sorted(SHIPPED_DIR.glob("*/*.gz")):
        original = ORIGINAL_DIR / shipped.parent.name / shipped.name.removesuffix(".gz")
        assert gzip.decompress(shipped.read_bytes()) == original.read_bytes(), shipped.name


def test_shipped_assets_carry_licence_and_notice():
    assert "Apache License" in (SHIPPED_DIR / "LICENSE").read_text()
    assert "RouteLLM" in (SHIPPED_DIR / "NOTICE.md").read_text()
    size = sum(f.stat().st_size for f in SHIPPED_DIR.rglob("*") if f.is_file())
    assert size < 4 * 2**20


def test_table_validation():
    with pytest.raises(ValueError, match=r"scores must lie in \[0, 1\]"):
        RoutingTable("t", ["m"], ["a"], ["p"], ["s"], np.array([[2.0]]), [[None]], [[1]], [[1]])
    with pytest.raises(ValueError, match="not unique"):
        RoutingTable(
            "t",
            ["m"],
            ["a", "a"],
            ["p", "q"],
            ["s", "s"],
            [[1], [0]],
            [[None], [None]],
            [[1], [1]],
            [[1], [1]],
        )
    with pytest.raises(ValueError, match=r"data.test_fraction=1.0: use a value in \(0, 1\)"):
        RoutingTableDataConfig(test_fraction=1.0)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        RoutingTable("t", ["m"], ["a"], ["p"], ["s"], [[1]], [[None]], [[1]], [[1]]).split(0.0, seed=0)


def test_routellm_splits_are_disjoint_keep_the_test_rows_and_size_validation():
    from rl_router.data.routellm import load_routing_splits

    splits = load_routing_splits(limit=2000)
    train, validation, test = splits
    ids = [set(part.ids) for part in splits]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert len(train) + len(validation) + len(test) == 2000
    assert abs(len(validation) - 200) <= 4 and abs(len(test) - 600) <= 4  # per-source rounding
    _, old_test = load_routing_table(limit=2000).split(0.3, 0)  # the split before validation existed
    assert test.ids == old_test.ids
    with pytest.raises(
        ValueError, match=r"data.val_fraction=0.8: use a value in \(0, 1 - test_fraction=0.7\)"
    ):
        load_routing_splits(limit=2000, val_fraction=0.8)
