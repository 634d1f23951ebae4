"""Config schemas of a candidate pool: one :class:`ModelConfig` per candidate, one :class:`PoolConfig`.

``conf/pool/<name>.yaml`` composes onto :class:`PoolConfig` (Hydra schema ``pool_schema``). Backend
options live in their own small dataclasses (``FakeOptions`` ...) next to the backend they configure,
so a model entry sets only the block of its backend::

    - name: smollm2
      backend: vllm
      model: smollm2-135m-instruct
      vllm: {max_model_len: 2048}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from rl_router.pool.fake import FakeOptions
from rl_router.pool.hf_backend import HFOptions
from rl_router.pool.openai_backend import OpenAIOptions
from rl_router.pool.types import ModelDescriptor, SamplingParams
from rl_router.pool.vllm_backend import VLLMOptions

BACKENDS = ("replay", "fake", "hf", "vllm", "openai")


@dataclass
class SamplingConfig:
    """Default decoding of a candidate (mutable twin of :class:`SamplingParams` for Hydra overrides)."""

    temperature: float = 0.0  # 0 = greedy (Router-R1 calls candidates greedily)
    max_tokens: int = 512  # new-token cap of one answer
    top_p: float = 1.0  # nucleus sampling mass
    seed: int = 0  # sampling seed; part of the cache key

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"sampling.temperature={self.temperature}: use 0 (greedy) or a positive value")
        if self.max_tokens < 1:
            raise ValueError(f"sampling.max_tokens={self.max_tokens}: use at least 1")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sampling.top_p={self.top_p}: use a value in (0, 1]")

    def params(self) -> SamplingParams:
        return SamplingParams(**asdict(self))


@dataclass
class ModelConfig:
    """One candidate: what the router is told about it, and how the pool serves it."""

    name: str = ""  # the name the router routes by (unique in the pool)
    backend: str = "fake"  # replay | fake | hf | vllm | openai
    model: str = ""  # zoo name, local path, hub id, endpoint model id, or the replay table column
    revision: str = "main"  # model revision; part of the cache key (bump it when weights change)
    params_b: float = 0.0  # parameter count in billions (0 when unknown)
    description: str = ""  # one line of capability text shown to LLM routers
    price_in: float = 0.0  # dollars per 1M input tokens (list price, charged on cache hits too)
    price_out: float = 0.0  # dollars per 1M output tokens
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # default decoding
    ray_actor: bool | None = None  # serve from a Ray actor; None: only vllm does
    num_cpus: float = 1.0  # CPUs reserved for this model's Ray actor
    num_gpus: float = 0.0  # GPUs reserved for this model's Ray actor
    resources: dict[str, float] = field(default_factory=dict)  # custom Ray resources: pin it to nodes
    fake: FakeOptions = field(default_factory=FakeOptions)  # backend=fake only
    hf: HFOptions = field(default_factory=HFOptions)  # backend=hf only
    vllm: VLLMOptions = field(default_factory=VLLMOptions)  # backend=vllm only
    openai: OpenAIOptions = field(default_factory=OpenAIOptions)  # backend=openai only

    def __post_init__(self) -> None:
        # Plain dicts arrive from code and from `instantiate(..., _convert_="all")`; accept them.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict) and f.name in _NESTED:
                setattr(self, f.name, _NESTED[f.name](**value))
        if not self.name:
            raise ValueError("pool.models[].name is empty: give every candidate the name routers use")
        if self.backend not in BACKENDS:
            raise ValueError(f"model {self.name!r}: backend={self.backend!r}; use one of {BACKENDS}")
        if self.backend != "fake" and not self.model:
            raise ValueError(f"model {self.name!r}: set `model` (zoo name, path, hub id or table column)")
        if min(self.price_in, self.price_out, self.params_b) < 0:
            raise ValueError(f"model {self.name!r}: prices and params_b must be >= 0")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ValueError(f"model {self.name!r}: num_cpus / num_gpus must be >= 0")
        reserved = sorted(set(self.resources) & {"CPU", "GPU", "memory", "object_store_memory"})
        if reserved:
            raise ValueError(f"model {self.name!r}: resources {reserved}: set num_cpus / num_gpus instead")
        if any(v < 0 for v in self.resources.values()):
            raise ValueError(f"model {self.name!r}: resources {self.resources}: amounts must be >= 0")
        if self.backend == "vllm" and self.ray_actor is False:
            raise ValueError(
                f"model {self.name!r}: the vllm backend always runs in a Ray actor; drop ray_actor"
            )
        if self.backend == "replay" and self.ray_actor:
            raise ValueError(f"model {self.name!r}: replay answers from memory; set ray_actor: false")

    @property
    def in_ray(self) -> bool:
        """Whether this model is served from a Ray actor."""
        return self.backend == "vllm" if self.ray_actor is None else self.ray_actor

    def descriptor(self) -> ModelDescriptor:
        """The router-facing description (and list prices) of this candidate."""
        return ModelDescriptor(
            name=self.name,
            backend=self.backend,
            model=self.model,
            revision=self.revision,
            params_b=self.params_b,
            description=self.description,
            price_in=self.price_in,
            price_out=self.price_out,
            sampling=self.sampling.params(),
        )


_NESTED: dict[str, type] = {
    "sampling": SamplingConfig,
    "fake": FakeOptions,
    "hf": HFOptions,
    "vllm": VLLMOptions,
    "openai": OpenAIOptions,
}


@dataclass
class RayConfig:
    """Where Ray actors run: a local Ray started on demand, or an existing cluster.

    An actor gets ``start_timeout_s`` from its start (at build, or after a restart: its node was
    lost) to be placed on a node and load its model. Past that, ``build_pool`` raises
    :class:`TimeoutError`; after a restart, calls to the model fail at once, as error results, until
    the waiting actor is placed (a node with its resources joins) and ready. The default hour leaves
    time for first downloads of the largest candidates. See docs/cluster.md.
    """

    address: str | None = None  # None: start a local Ray; "auto", "host:6379" or "ray://host:10001": join
    num_cpus: int | None = None  # CPUs of the local Ray (None: all); ignored when joining a cluster
    namespace: str = "rl_router"  # Ray namespace of the pool's actors
    start_timeout_s: float = 3600.0  # seconds an actor may take to be placed on a node and load its model

    def __post_init__(self) -> None:
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ValueError(f"pool.ray.num_cpus={self.num_cpus}: use at least 1, or null for all")
        if self.start_timeout_s <= 0:
            raise ValueError(
                f"pool.ray.start_timeout_s={self.start_timeout_s}: use a positive number of seconds"
            )


@dataclass
class ReplayTableConfig:
    """The recorded routing table that replay models answer from (see rl_router.data.routellm)."""

    path: str | None = None  # RouteLLM-format directory; None: the copy shipped with the package
    benchmarks: list[str] = field(default_factory=lambda: ["gsm8k", "mmlu"])  # benchmarks to load
    exclude_contaminated: bool = True  # drop prompts RouteLLM lists as contaminated
    limit: int | None = None  # fixed random subset of this many rows (smoke runs); None: all


@dataclass
class PoolConfig:
    """A candidate pool: its models, response cache, Ray placement, timeouts and retries."""

    _target_: str = "rl_router.pool.build.build_pool"
    _convert_: str = "object"  # Hydra hands nested configs to build_pool as dataclasses
    name: str = "pool"  # pool name (logs, exported router cards)
    models: list[ModelConfig] = field(default_factory=list)  # the candidates, in router order
    cache: bool = True  # reuse answers to identical calls (same model, revision, messages, sampling)
    cache_dir: str = "~/.cache/rl_router/responses"  # directory of the one sqlite cache file
    timeout_s: float = 300.0  # seconds one call to a model (its whole batch) may take before it fails
    retries: int = 1  # extra attempts for failed requests (after restarting a dead actor)
    ray: RayConfig = field(default_factory=RayConfig)  # Ray placement of actor-served models
    replay: ReplayTableConfig = field(default_factory=ReplayTableConfig)  # table for replay models

    def __post_init__(self) -> None:
        self.models = [ModelConfig(**m) if isinstance(m, dict) else m for m in self.models]
        if isinstance(self.ray, dict):
            self.ray = RayConfig(**self.ray)
        if isinstance(self.replay, dict):
            self.replay = ReplayTableConfig(**self.replay)
        if not self.models:
            raise ValueError("pool.models is empty: list at least one candidate (see conf/pool/fake.yaml)")
        names = [m.name for m in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"pool.models: duplicate names {duplicates}; routers need unique names")
        if self.timeout_s <= 0:
            raise ValueError(f"pool.timeout_s={self.timeout_s}: use a positive number of seconds")
        if self.retries < 0:
            raise ValueError(f"pool.retries={self.retries}: use 0 (no retry) or more")
