"""``PolicyRouter``: a trained small-policy router you can ask, and :func:`load_router` to get one back.

A small-policy router is three things: the candidates it routes between (their descriptors, in
action order), the query encoder (all-MiniLM-L6-v2, :mod:`rl_router.embeddings`) and the policy
network over ``[query embedding; descriptor features]``. Training builds it with
:func:`build_policy`; evaluation and export rebuild the same object from a run directory::

    router = load_router("outputs/default/2026-11-25_03-00-00")
    router.route(["What is 12 * 7?"])             # -> ["mixtral-8x7b"]
    router.probs(router.embed(["What is 12 * 7?"]))  # -> float32 [1, 2]

:func:`load_router` takes any of three sources:

* a *run directory* of ``rl-router train``: ``config.yaml`` (the resolved training config) and
  ``checkpoints/step_*/`` (:mod:`rl_router.trainers.checkpoint`); the newest checkpoint's
  ``policy.safetensors`` is loaded (an LLM run's ``router/``, see :mod:`rl_router.llm_router`);
* a *model folder of an LLM run*: ``<run>/sft_model`` (the warm start), ``<run>/router`` or
  ``<run>/checkpoints/checkpoint-N``, to evaluate or export one checkpoint of the run;
* an *exported folder* of ``rl-router export`` (:mod:`rl_router.hub`): ``router_config.json``,
  ``model.safetensors`` and ``pool.json``, no pickle anywhere;
* a *Hub repo id* (``"<user>/<name>"``) holding such a folder, fetched with ``snapshot_download``.

An exported folder's ``router_config.json`` names its ``router_kind``: ``"policy"`` (a small policy
network over query embeddings, read here) or ``"llm"`` (a transformers model, its tokenizer and the
protocol it was trained under: :class:`rl_router.llm_router.LLMRouter`). A run directory is an LLM
router's when its ``env.mode`` is ``multi_round``. Both kinds answer ``router.route(queries)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from envs.multi_llm_qa import DESCRIPTOR_FEATURES, descriptor_features
from rl_router import __version__
from rl_router.embeddings import EMBED_DIM, embed_queries
from rl_router.policies.router_policy import RouterPolicy
from rl_router.pool.descriptors import PoolConfig
from rl_router.pool.types import ModelDescriptor, SamplingParams
from rl_router.trainers import checkpoint as ckpt

if TYPE_CHECKING:
    from rl_router.llm_router import LLMRouter

RUN_CONFIG = "config.yaml"  # the resolved training config, written by `rl-router train`

# The exported folder (written by rl_router.hub.export_router, read by load_router).
ROUTER_CONFIG = "router_config.json"  # router kind, policy config, observation layout, versions
WEIGHTS = "model.safetensors"  # the policy's state dict (actor and critic), safetensors only
POOL = "pool.json"  # the candidate descriptors, in action order
FORMAT_VERSION = 1  # bumped when the folder layout changes incompatibly
ROUTER_KINDS = ("policy", "llm")
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # what rl_router.embeddings runs
FEATURE_NAMES = ("log1p(params_b)", "log1p(price_in)", "log1p(price_out)")  # per candidate, see envs
# Exported configs may come from strangers: only our own policy classes are instantiated from them.
TRUSTED_POLICY_PREFIX = "rl_router.policies."
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def build_policy(policy_cfg: Mapping[str, Any], descriptors: Sequence[ModelDescriptor]) -> nn.Module:
    """The policy network a router config names, sized for ``descriptors``.

    The observation is ``[query embedding (384); descriptor features (3 per candidate)]``, the
    layout of :class:`envs.multi_llm_qa.MultiLLMQAEnv` in select mode. :class:`RouterPolicy`
    also gets the descriptor features to initialise its candidate embeddings.
    """
    features = descriptor_features(descriptors)
    obs_dim = EMBED_DIM + features.size
    is_router_policy = issubclass(get_class(policy_cfg["_target_"]), RouterPolicy)
    extra = {"descriptor_features": features} if is_router_policy else {}
    return instantiate(policy_cfg, obs_dim=obs_dim, num_actions=len(descriptors), **extra)


def pool_descriptors(pool_cfg: Mapping[str, Any]) -> list[ModelDescriptor]:
    """Candidate descriptors of a pool config, in router action order, without building the pool."""
    merged = OmegaConf.merge(OmegaConf.structured(PoolConfig), pool_cfg)
    pool: PoolConfig = OmegaConf.to_object(merged)
    return [model.descriptor() for model in pool.models]


@dataclass
class PolicyRouter:
    """A trained policy that routes each query to one candidate.

    Attributes:
        policy: ``policy(obs[B, D], mask) -> (logits[B, A], value[B])``, in eval mode.
        descriptors: the candidates, in action order.
        checkpoint: where the weights came from: a checkpoint directory or an exported folder
            (None for a freshly built router).
        training: the training run's config groups (``data``, ``pool``, ``env`` ...), the defaults
            of ``rl-router eval``; empty when unknown.
    """

    policy: nn.Module
    descriptors: list[ModelDescriptor]
    checkpoint: Path | None = None
    training: dict[str, Any] = field(default_factory=dict)

    kind = "policy"

    @property
    def model_names(self) -> list[str]:
        return [d.name for d in self.descriptors]

    def observations(self, embeddings: np.ndarray) -> torch.Tensor:
        """``float32 [n, D]``: each query embedding followed by the descriptor features."""
        emb = np.asarray(embeddings, dtype=np.float32).reshape(-1, EMBED_DIM)
        feats = descriptor_features(self.descriptors).reshape(1, -1)
        feats = np.broadcast_to(feats, (len(emb), feats.shape[1]))
        return torch.from_numpy(np.concatenate([emb, feats], axis=1))

    @torch.no_grad()
    def probs(self, embeddings: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """``float32 [n, A]`` routing probabilities for query embeddings ``[n, 384]``."""
        obs = self.observations(embeddings)
        out = [torch.softmax(self.policy(chunk, None)[0], dim=-1) for chunk in obs.split(batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.descriptors)), np.float32)

    def embed(self, queries: Sequence[str], progress: bool = False) -> np.ndarray:
        """Query embeddings ``float32 [n, 384]`` (cached on disk, see :func:`embed_queries`)."""
        return embed_queries(queries, progress=progress)

    def route(self, queries: Sequence[str]) -> list[str]:
        """The candidate name the router picks (greedily) for each query."""
        choice = self.probs(self.embed(queries)).argmax(axis=1)
        return [self.model_names[i] for i in choice]


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The resolved training config of a run directory."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: checkpoint= must be a run directory of `rl-router train`")
    return OmegaConf.load(path)


def descriptor_dict(descriptor: ModelDescriptor) -> dict[str, Any]:
    """A descriptor as plain JSON data (what ``pool.json`` lists)."""
    return asdict(descriptor)


def descriptor_from_dict(data: Mapping[str, Any]) -> ModelDescriptor:
    """The inverse of :func:`descriptor_dict`.

    >>> d = ModelDescriptor("m", "replay", params_b=7.0, price_in=0.3, price_out=0.3)
    >>> descriptor_from_dict(descriptor_dict(d)) == d
    True
    """
    return ModelDescriptor(**{**data, "sampling": SamplingParams(**data.get("sampling", {}))})


def observation_layout(descriptors: Sequence[ModelDescriptor]) -> dict[str, Any]:
    """How a policy router builds its observation ``[n, D]`` (recorded in ``router_config.json``)."""
    features = DESCRIPTOR_FEATURES * len(descriptors)
    return {
        "dim": EMBED_DIM + features,
        "parts": [
            {
                "name": "query_embedding",
                "size": EMBED_DIM,
                "encoder": EMBEDDING_MODEL,
                "recipe": "truncate to 256 tokens, mean-pool the last hidden state, L2-normalise",
            },
            {
                "name": "descriptor_features",
                "size": features,
                "per_candidate": list(FEATURE_NAMES),
                "order": "candidates in pool.json order, features of each candidate together",
            },
        ],
    }


def load_router(path_or_repo_id: str | Path, revision: str | None = None) -> PolicyRouter | LLMRouter:
    """A trained router from a run directory, an exported folder or a Hub repo id.

    Args:
        path_or_repo_id: a run directory of ``rl-router train``, a folder written by
            ``rl-router export``, or ``"<user>/<name>"`` of a Hub repo holding such a folder.
            A local directory wins over a repo id of the same spelling.
        revision: Hub branch, tag or commit (repo ids only); None: the default branch.

    The Hub path calls :func:`huggingface_hub.snapshot_download` and then reads the downloaded
    folder exactly like a local export. It needs network access (or the files already in the
    Hub cache), so the test suite, which runs offline, covers local folders only.

    Raises:
        FileNotFoundError: nothing loadable at ``path_or_repo_id``, or a run without checkpoints.
        ValueError: an exported folder this version cannot read (other router kind, format
            version or observation layout, untrusted policy class).
    """
    path = Path(path_or_repo_id)
    if path.is_dir():
        if (path / RUN_CONFIG).is_file():
            return _load_run(path)
        if (path / ROUTER_CONFIG).is_file():
            return load_exported(path)
        run = run_of_model_dir(path)
        if run is not None:
            from rl_router.llm_router import load_llm_run

            return load_llm_run(run, load_run_config(run), model_dir=path)
        raise FileNotFoundError(
            f"{path} is neither a run directory of `rl-router train` (no {RUN_CONFIG}) "
            f"nor a folder of `rl-router export` (no {ROUTER_CONFIG})"
        )
    if _REPO_ID.match(str(path_or_repo_id)):
        return load_exported(_download(str(path_or_repo_id), revision))
    raise FileNotFoundError(
        f"{path_or_repo_id} not found: give a run directory, an exported folder or a Hub repo id "
        "<user>/<name>"
    )


def run_of_model_dir(path: Path) -> Path | None:
    """The LLM run a transformers model folder belongs to, or None.

    ``<run>/sft_model``, ``<run>/router`` and ``<run>/checkpoints/checkpoint-N`` each hold a
    ``config.json``; their run directory (one or two levels up) holds the run's ``config.yaml``.
    """
    if not (path / "config.json").is_file():
        return None
    for parent in (path.parent, path.parent.parent):
        config = parent / RUN_CONFIG
        if config.is_file() and OmegaConf.load(config).env.get("mode") == "multi_round":
            return parent
    return None


def _load_run(run_dir: Path) -> PolicyRouter | LLMRouter:
    """The router of a training run: its config and newest checkpoint."""
    cfg = load_run_config(run_dir)
    if cfg.env.get("mode") == "multi_round":
        from rl_router.llm_router import load_llm_run

        return load_llm_run(run_dir, cfg)
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is None:
        raise FileNotFoundError(f"{run_dir} holds no checkpoint (checkpoints/step_*): has training started?")
    descriptors = pool_descriptors(cfg.pool)
    policy = build_policy(cfg.policy, descriptors)
    ckpt.load_policy_weights(latest, policy)
    training = OmegaConf.to_container(cfg, resolve=True)
    return PolicyRouter(policy.eval(), descriptors, checkpoint=latest, training=training)


def load_exported(folder: str | Path) -> PolicyRouter | LLMRouter:
    """The router of a folder written by ``rl-router export`` (see :func:`load_router`)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / ROUTER_CONFIG).read_text())
    kind = config.get("router_kind")
    if kind not in ROUTER_KINDS:
        raise ValueError(
            f"{folder / ROUTER_CONFIG}: router_kind={kind!r}; rl-router {__version__} loads "
            f"{' and '.join(repr(k) for k in ROUTER_KINDS)} routers"
        )
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{folder / ROUTER_CONFIG}: format_version={config.get('format_version')!r}, this rl-router "
            f"reads version {FORMAT_VERSION}; install the rl-router version that wrote it "
            f"({config.get('rl_router_version')})"
        )
    if kind == "llm":
        from rl_router.llm_router import load_llm_exported

        return load_llm_exported(folder, config)
    descriptors = [descriptor_from_dict(d) for d in json.loads((folder / POOL).read_text())]
    expected = observation_layout(descriptors)
    if config.get("observation") != expected:
        raise ValueError(
            f"{folder / ROUTER_CONFIG}: observation layout {config.get('observation')} differs from what "
            f"this rl-router builds for pool.json ({expected})"
        )
    policy_cfg = config["policy"]
    _check_policy_config(policy_cfg, folder / ROUTER_CONFIG)
    policy = build_policy(policy_cfg, descriptors)
    policy.load_state_dict(load_file(str(folder / WEIGHTS)))
    training = dict(config.get("training") or {})
    return PolicyRouter(policy.eval(), descriptors, checkpoint=folder, training=training)


def _check_policy_config(policy_cfg: Mapping[str, Any], where: Path) -> None:
    """Refuse an exported policy config that would make Hydra call anything but one of our policies.

    ``instantiate`` imports and calls ``_target_`` and, recursively, any nested ``_target_``; the
    other ``_*_`` keys change how it calls. An exported config may only name a policy class.
    """
    target = str(policy_cfg.get("_target_", ""))
    if not target.startswith(TRUSTED_POLICY_PREFIX) or not issubclass(get_class(target), nn.Module):
        raise ValueError(
            f"{where}: policy._target_={target!r} is not a policy class of {TRUSTED_POLICY_PREFIX}*; "
            "refusing to instantiate it"
        )
    special = [key for key in policy_cfg if key.startswith("_") and key != "_target_"]
    if special or "_target_" in json.dumps({k: v for k, v in policy_cfg.items() if k != "_target_"}):
        raise ValueError(f"{where}: the policy config may hold plain values only besides its _target_")


def _download(repo_id: str, revision: str | None) -> Path:
    """The files of an exported router on the Hub, in the local Hub cache (weights and JSON only)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        # Never fetch pickles: an exported router is JSON, safetensors and text.
        patterns = ["*.json", "*.safetensors", "*.txt", "*.jinja", "*.md", "*.model"]
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except (LocalEntryNotFoundError, RepositoryNotFoundError) as err:
        raise FileNotFoundError(
            f"{repo_id} is not a local directory, and the Hub repo could not be fetched: {err}"
        ) from err
