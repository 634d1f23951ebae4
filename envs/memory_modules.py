"""BudgetMem's five memory modules, each at three cost tiers, and the fixed answer model.

A query's memory goes through ``filter -> entity / temporal / topic extraction -> summary``:

* ``filter`` keeps the lines of the retrieved chunks that bear on the question;
* ``entity``, ``temporal`` and ``topic`` each read the filter's output and extract people and
  things, dated events, or what the lines are about;
* ``summary`` reads the filter's output and the three extractions and writes the notes the answer
  model answers from.

Every module runs at tier Low, Mid or High. How a tier is realised is one of BudgetMem's three
*tiering strategies*, a list of three tier models (:class:`TierModel`) in config:

* ``implementation``: Low a heuristic (keyword overlap, regular expressions), Mid a small encoder
  (all-MiniLM-L6-v2 similarities), High an LLM of the pool;
* ``reasoning``: one LLM with a direct, a chain-of-thought, or a plan-act-reflect prompt;
* ``capacity``: a small, a mid and a large LLM with the same direct prompt.

Local implementations (heuristic, encoder, the extractive answer reader) are priced like pool models
(:class:`~rl_router.pool.types.ModelDescriptor` with backend ``local``), so the cost ledger charges
every call of every tier: input and output tokens (whitespace tokens for local calls, the backend's
count for LLM calls) times its price. A repeated call is answered from a content cache (the pool's
response cache for LLMs, :class:`ModuleRunner`'s memo for local ones) and charged all the same.

Text flows as lines, each ``[<date>] <speaker>: <text>`` as the chunks write them.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rl_router.pool.types import CandidatePool, ModelDescriptor, Request, Result, SamplingParams

MODULES = ("filter", "entity", "temporal", "topic", "summary")
TIERS = ("low", "mid", "high")
STRATEGIES = ("implementation", "reasoning", "capacity")
KINDS = ("heuristic", "encoder", "llm")
PROMPTS = ("direct", "cot", "plan_act_reflect")
ANSWER_KINDS = ("extractive", "llm")

Encoder = Callable[[Sequence[str]], np.ndarray]  # texts -> float32 [n, D], unit-norm rows

_STOP_WORDS = (
    "a an the and or but of to in on at for with from by is are was were be been being do does did "
    "what when where who whom which why how that this these those it its i you he she we they me him "
    "her us them my your his our their have has had not no so as if than then there here about into "
    "can could would should will just also very really yeah oh hey hi"
)
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[A-Za-z0-9']+")
_CAPITAL = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*\b")
_TIME = re.compile(
    r"\b(?:yesterday|today|tonight|tomorrow|last|next|ago|weekend|week|month|year|"
    r"january|february|march|april|may|june|july|august|september|october|november|december|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|(?:19|20)\d\d)\b",
    re.IGNORECASE,
)
_DATE = re.compile(r"^\[([^\]]*)\]\s*")


@dataclass
class TierModel:
    """How one tier runs a module: a local implementation, or an LLM of the pool with a prompt style."""

    kind: str = "llm"  # heuristic | encoder | llm
    model: str = ""  # the pool model (llm), or the name the ledger charges a local implementation under
    prompt: str = "direct"  # llm: direct | cot | plan_act_reflect (the reasoning strategy varies this)
    price: float = 0.0  # local kinds: dollars per 1M tokens, in and out (LLMs take the pool's prices)
    max_tokens: int = 96  # llm: new-token cap of one module call

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"tier kind={self.kind!r}: choose one of {KINDS}")
        if self.prompt not in PROMPTS:
            raise ValueError(f"tier prompt={self.prompt!r}: choose one of {PROMPTS}")
        if not self.model:
            raise ValueError(f"a {self.kind} tier needs `model` (the name its calls are charged under)")
        if self.max_tokens < 1:
            raise ValueError(f"tier {self.model}: max_tokens={self.max_tokens}, use at least 1")

    def descriptor(self) -> ModelDescriptor | None:
        """The ledger's price entry of a local implementation (None for an LLM: the pool has it)."""
        if self.kind == "llm":
            return None
        return ModelDescriptor(self.model, "local", price_in=self.price, price_out=self.price)


def check_strategy(strategy: str, tiers: Sequence[TierModel]) -> None:
    """A strategy's tiers must be what it says (messages name the field to change)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"env.strategy={strategy!r}: choose one of {STRATEGIES}")
    if len(tiers) != len(TIERS):
        raise ValueError(f"env.tiers has {len(tiers)} entries: give one per tier {TIERS}")
    kinds = [t.kind for t in tiers]
    if strategy == "implementation" and kinds != list(KINDS):
        raise ValueError(f"strategy=implementation needs tiers heuristic, encoder, llm; got {kinds}")
    if strategy in ("reasoning", "capacity") and kinds != ["llm"] * 3:
        raise ValueError(f"strategy={strategy} needs three llm tiers; got {kinds}")
    one_model = len({t.model for t in tiers}) == 1
    if strategy == "reasoning" and (not one_model or [t.prompt for t in tiers] != list(PROMPTS)):
        raise ValueError("strategy=reasoning needs one model with prompts direct, cot, plan_act_reflect")
    if strategy == "capacity" and len({t.model for t in tiers}) != 3:
        raise ValueError("strategy=capacity needs three different models (small, mid, large)")


# ---------------------------------------------------------------------------------- text helpers
_TURN_START = re.compile(r"\s(?=\[[^\]\n]{0,40}\d{4}\] )")


def lines_of(text: str) -> list[str]:
    """Memory lines: one per text line, and one per ``[<date>] `` turn run together on a line.

    >>> lines_of("[1 May, 2023] A: hi [2 May, 2023] B: yo\\nplain")
    ['[1 May, 2023] A: hi', '[2 May, 2023] B: yo', 'plain']
    """
    return [part.strip() for line in text.split("\n") for part in _TURN_START.split(line) if part.strip()]


def content_words(text: str) -> list[str]:
    """Lower-cased words that are not stop words.

    >>> content_words("When did Caroline go to the LGBTQ support group?")
    ['caroline', 'go', 'lgbtq', 'support', 'group']
    """
    return [w for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP]


def split_date(line: str) -> tuple[str, str]:
    """``("<date>", "<rest>")`` of a ``[<date>] rest`` line (``""`` when there is no date).

    >>> split_date("[8 May, 2023] Caroline: I went")
    ('8 May, 2023', 'Caroline: I went')
    """
    match = _DATE.match(line)
    return (match.group(1), line[match.end() :]) if match else ("", line)


def short_date(date: str) -> str:
    """The day part of LoCoMo's ``1:56 pm on 8 May, 2023`` session dates.

    >>> short_date("1:56 pm on 8 May, 2023")
    '8 May, 2023'
    """
    return date.split(" on ", 1)[-1].strip()


def count_tokens(text: str) -> int:
    return len(text.split())


def _top(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` best scores, in their original order (stable under ties)."""
    best = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    return sorted(best)


class HashingEncoder:
    """A fixed bag-of-words encoder: signed feature hashing of content words, L2-normalised.

    Deterministic and instant: the encoder of the tests and of ``check_env``. The default run uses
    all-MiniLM-L6-v2 (``env.encoder=minilm``).

    >>> enc = HashingEncoder(dim=16)
    >>> v = enc(["red apple", "red apple", "blue sky"])
    >>> v.shape, round(float(v[0] @ v[1]), 4), float(abs(v[0] @ v[2])) < 1.0
    ((3, 16), 1.0, True)
    """

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in content_words(text):
                digest = hashlib.md5(word.encode()).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                out[row, index] += 1.0 if digest[4] & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


class CachedEncoder:
    """Memoises an encoder by text, so a chunk or a module output is embedded once per process."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vec in zip(missing, self.encoder(missing), strict=True):
                self._cache[text] = np.asarray(vec, dtype=np.float32)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])


# ---------------------------------------------------------------------------------- local tiers
def heuristic_module(module: str, question: str, inputs: Mapping[str, str]) -> str:
    """Low tier of the implementation strategy: keyword overlap and regular expressions."""
    keys = set(content_words(question))
    if module == "filter":
        lines = lines_of(inputs["memory"])
        scores = [len(keys & set(content_words(split_date(line)[1]))) for line in lines]
        return "\n".join(lines[i] for i in _top(scores, 6) if scores[i] > 0)
    lines = lines_of(inputs["filtered"])
    if module == "entity":
        names = Counter(n for line in lines for n in _CAPITAL.findall(split_date(line)[1].split(":", 1)[-1]))
        return "entities: " + ", ".join(n for n, _ in names.most_common(6)) if names else ""
    if module == "temporal":
        dated = [line for line in lines if _TIME.search(split_date(line)[1])]
        return "\n".join(f"{short_date(d)}: {rest}" for d, rest in map(split_date, dated[:4]))
    if module == "topic":
        words = Counter(w for line in lines for w in content_words(split_date(line)[1].split(":", 1)[-1]))
        return "topics: " + ", ".join(w for w, _ in words.most_common(5)) if words else ""
    parts = [inputs.get(k, "") for k in ("temporal", "entity", "topic")] + lines[:3]
    return "\n".join(p for p in parts if p)


def encoder_module(module: str, question: str, inputs: Mapping[str, str], encode: Encoder) -> str:
    """Mid tier of the implementation strategy: similarities under the sentence encoder."""
    source = inputs["memory"] if module == "filter" else inputs["filtered"]
    lines = lines_of(source)
    if module == "summary":
        lines = lines + [
            line for k in ("temporal", "entity", "topic") for line in lines_of(inputs.get(k, ""))
        ]
    if not lines:
        return ""
    sims = (encode([split_date(line)[1] for line in lines]) @ encode([question])[0]).tolist()
    if module == "filter":
        return "\n".join(lines[i] for i in _top(sims, 6))
    if module == "entity":
        best = lines[_top(sims, 1)[0]]
        names = list(dict.fromkeys(_CAPITAL.findall(split_date(best)[1])))
        return "entities: " + ", ".join(names[:6]) if names else ""
    if module == "temporal":
        return "\n".join(
            f"{short_date(d)}: {rest}" for d, rest in map(split_date, (lines[i] for i in _top(sims, 2)))
        )
    if module == "topic":
        centroid = encode([split_date(line)[1] for line in lines]).mean(0)
        sims_c = (encode([split_date(line)[1] for line in lines]) @ centroid).tolist()
        return "topic: " + split_date(lines[_top(sims_c, 1)[0]])[1]
    return "\n".join(lines[i] for i in _top(sims, 4))


def extractive_answer(question: str, summary: str, encode: Encoder, max_words: int = 6) -> str:
    """The CPU default's fixed answer model: the summary line closest to the question, cut short.

    "When" questions get the line's date; other answers keep the line's content words that the
    question does not already say, at most ``max_words`` of them (LoCoMo's answers are short).

    >>> enc = HashingEncoder()
    >>> extractive_answer("When did Mel paint?", "[8 May, 2023] Mel: I painted a sunrise", enc)
    '8 May, 2023'
    >>> extractive_answer("What did Mel paint?", "[8 May, 2023] Mel: I painted a lovely sunrise", enc)
    'painted lovely sunrise'
    """
    lines = lines_of(summary)
    if not lines:
        return "unknown"
    sims = (encode([split_date(line)[1] for line in lines]) @ encode([question])[0]).tolist()
    best = lines[_top(sims, 1)[0]]
    date, rest = split_date(best)
    if question.lower().startswith("when") and date:
        return short_date(date)
    body = rest.split(":", 1)[-1] if ":" in rest[:40] else rest
    asked = set(content_words(question))
    words = [w.strip(".,!?\"'") for w in body.split()]
    kept = [w for w in words if w and w.lower() not in asked and w.lower() not in _STOP]
    return " ".join(kept[:max_words]) or "unknown"


# ---------------------------------------------------------------------------------- LLM tiers
_TASKS = {
    "filter": "Copy only the lines of the notes that help answer the question.",
    "entity": "List the people, places and things in the notes that matter for the question.",
    "temporal": "List the dated events in the notes that matter for the question, as 'date: event'.",
    "topic": "Say in one line what the notes that matter for the question are about.",
    "summary": "Write short factual notes, with dates, that answer the question.",
}
_STYLES = {
    "direct": "Write only the result.",
    "cot": "Think step by step, then write 'Result:' followed by the result.",
    "plan_act_reflect": (
        "First write a short plan, then carry it out, then check the result against the notes and "
        "fix it; end with 'Result:' followed by the final result."
    ),
}


def module_prompt(module: str, style: str, question: str, inputs: Mapping[str, str]) -> str:
    """The user message of an LLM tier's module call."""
    if module == "filter":
        notes = inputs["memory"]
    elif module == "summary":
        notes = "\n".join(
            p
            for p in (inputs["filtered"], *(inputs.get(k, "") for k in ("entity", "temporal", "topic")))
            if p
        )
    else:
        notes = inputs["filtered"]
    return f"{_TASKS[module]} {_STYLES[style]}\n\nQuestion: {question}\n\nNotes:\n{notes}"


def answer_prompt(question: str, summary: str) -> str:
    return (
        "Answer the question from the notes in a few words (a name, a date, a short phrase).\n\n"
        f"Notes:\n{summary}\n\nQuestion: {question}\nAnswer:"
    )


def parse_llm_output(text: str) -> str:
    """The result of a module call: what follows its last ``Result:`` (reasoning prompts), else the text.

    A model that echoes its prompt (small ones do) is cut to the notes it echoed, never the
    instructions or the question, so downstream modules read memory lines only.

    >>> parse_llm_output("plan... Result: Paris")
    'Paris'
    >>> parse_llm_output("m: Copy the lines. Question: q? Notes: [d] A: hi")
    '[d] A: hi'
    """
    marker = text.rfind("Result:")
    if marker >= 0:
        return text[marker + len("Result:") :].strip()
    notes = text.rfind("Notes:")
    return (text[notes + len("Notes:") :] if notes >= 0 else text).strip()


# ---------------------------------------------------------------------------------- the runner
@dataclass
class ModuleCall:
    """One module (or answer) call to make: ``tag`` is the module name or ``"answer"``."""

    tag: str
    tier: TierModel
    question: str
    inputs: dict[str, str] = field(default_factory=dict)


@dataclass
class ModuleOutput:
    """A call's output text and what it was charged for (tokens as counted)."""

    text: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_hit: bool = False
    error: str | None = None

    def as_result(self) -> Result:
        return Result(
            self.text, self.input_tokens, self.output_tokens, cache_hit=self.cache_hit, error=self.error
        )


class ModuleRunner:
    """Runs module calls: local tiers in process (memoised by content), LLM tiers in ONE pool call.

    Args:
        pool: The candidate pool serving the LLM tiers and an LLM answer model.
        encode: The fixed sentence encoder (Mid tiers, the extractive reader).
    """

    def __init__(self, pool: CandidatePool, encode: Encoder) -> None:
        self.pool = pool
        self.encode = encode
        self._memo: dict[str, ModuleOutput] = {}
        self.local_hits = 0

    def run(self, calls: Sequence[ModuleCall]) -> list[ModuleOutput]:
        """Every call's output, in order; the LLM calls among them go to the pool together."""
        out: list[ModuleOutput | None] = [None] * len(calls)
        requests, where = [], []
        for i, call in enumerate(calls):
            if call.tier.kind == "llm":
                text = (
                    answer_prompt(call.question, call.inputs["summary"])
                    if call.tag == "answer"
                    else module_prompt(call.tag, call.tier.prompt, call.question, call.inputs)
                )
                sampling = SamplingParams(max_tokens=call.tier.max_tokens)
                requests.append(Request(call.tier.model, ({"role": "user", "content": text},), sampling))
                where.append(i)
            else:
                out[i] = self._local(call)
        for i, result in zip(where, self.pool.generate(requests) if requests else [], strict=True):
            text = "" if result.error else parse_llm_output(result.text)
            if calls[i].tag == "answer":
                text = text.split("\n")[0].strip()
            out[i] = ModuleOutput(
                text,
                calls[i].tier.model,
                result.input_tokens,
                result.output_tokens,
                result.cache_hit,
                result.error,
            )
        return out  # type: ignore[return-value]  # every index was filled

    def _local(self, call: ModuleCall) -> ModuleOutput:
        key = hashlib.sha256(
            repr(
                (call.tag, call.tier.kind, call.tier.model, call.question, sorted(call.inputs.items()))
            ).encode()
        ).hexdigest()
        hit = self._memo.get(key)
        if hit is not None:
            self.local_hits += 1
            return ModuleOutput(hit.text, hit.model, hit.input_tokens, hit.output_tokens, cache_hit=True)
        if call.tag == "answer":
            text = extractive_answer(call.question, call.inputs["summary"], self.encode)
        elif call.tier.kind == "heuristic":
            text = heuristic_module(call.tag, call.question, call.inputs)
        else:
            text = encoder_module(call.tag, call.question, call.inputs, self.encode)
        read = count_tokens(call.question) + sum(count_tokens(v) for v in call.inputs.values())
        output = ModuleOutput(text, call.tier.model, read, count_tokens(text))
        self._memo[key] = output
        return output
