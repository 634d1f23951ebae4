"""RouterPolicy: pairwise candidate scoring, masking, descriptor init, size, configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from rl_router.cli import conf_dir
from rl_router.policies.mlp import ActorCritic, MLPPolicyConfig
from rl_router.policies.router_policy import RouterPolicy, RouterPolicyConfig

torch.set_num_threads(1)


def test_shapes_mask_and_prob_of():
    torch.manual_seed(0)
    policy = RouterPolicy(obs_dim=390, num_actions=4)
    obs = torch.randn(6, 390)
    mask = torch.tensor([[True, True, False, True]] * 6)
    logits, value = policy(obs, mask)
    assert logits.shape == (6, 4) and value.shape == (6,)
    assert policy.prob_of(obs, 2, mask).tolist() == [0.0] * 6
    assert torch.allclose(policy.action_probs(obs, mask).sum(-1), torch.ones(6))
    with pytest.raises(ValueError, match="outside the 4 candidates"):
        policy.prob_of(obs, 4)


def test_compact_size_for_minilm_embeddings():
    policy = RouterPolicy(obs_dim=384 + 6 * 3, num_actions=6)
    assert sum(p.numel() for p in policy.parameters()) <= 1_000_000


def test_descriptor_embeddings_start_from_standardised_features():
    feats = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]], dtype=np.float32)
    policy = RouterPolicy(obs_dim=5, num_actions=3, descriptor_features=feats, descriptor_dim=4)
    first = policy.descriptors[:, 0].detach()
    assert torch.allclose(first, torch.tensor([-1.2247, 0.0, 1.2247]), atol=1e-3)
    assert torch.allclose(policy.descriptors[:, 1].detach(), torch.zeros(3))  # constant column -> 0
    with pytest.raises(ValueError, match=r"descriptor_features must be \[3, F\]"):
        RouterPolicy(obs_dim=5, num_actions=3, descriptor_features=np.zeros((2, 2)))


def test_input_norm_standardises_columns_before_the_networks():
    torch.manual_seed(0)
    spread, centre = torch.tensor([0.05, 1.0, 3.0, 0.2, 0.0]), torch.tensor([1.0, -2.0, 0.5, 0.0, 7.0])
    obs = torch.randn(64, 5) * spread + centre
    fitted = RouterPolicy(obs_dim=5, num_actions=2, input_norm=True)
    fitted.fit_input_norm(obs.numpy())
    raw = RouterPolicy(obs_dim=5, num_actions=2)
    raw.load_state_dict({k: v for k, v in fitted.state_dict().items() if not k.startswith("obs_")})
    assert raw.obs_shift.abs().sum() == 0 and torch.equal(raw.obs_scale, torch.ones(5))
    standard = obs.clone()  # column 4 is constant and stays as it is
    standard[:, :4] = (obs[:, :4] - obs[:, :4].mean(0)) / obs[:, :4].std(0, unbiased=False)
    assert torch.allclose(fitted(obs)[0], raw(standard)[0], atol=1e-5)
    assert torch.allclose(fitted(obs)[1], raw(standard)[1], atol=1e-5)
    assert fitted.obs_shift[4] == 0 and fitted.obs_scale[4] == 1  # constant column passes unchanged
    with pytest.raises(ValueError, match=r"needs \[n >= 2, 5\] observations, got \(3, 4\)"):
        fitted.fit_input_norm(np.zeros((3, 4)))


def test_weights_saved_before_input_norm_load_and_real_gaps_still_fail():
    policy = RouterPolicy(obs_dim=4, num_actions=2)
    old = {k: v for k, v in policy.state_dict().items() if not k.startswith("obs_")}
    policy.fit_input_norm(np.random.default_rng(0).normal(size=(10, 4)))
    policy.load_state_dict(old)  # no obs_shift / obs_scale: the identity
    assert policy.obs_shift.abs().sum() == 0 and torch.equal(policy.obs_scale, torch.ones(4))
    del old["descriptors"]
    with pytest.raises(RuntimeError, match="descriptors"):
        policy.load_state_dict(old)


def test_can_learn_a_query_dependent_routing_and_descriptors_train():
    # BudgetMem's learned routes were nearly query-independent; pairwise scoring must be able to
    # route each query to a different candidate (here: by the sign of its first feature).
    torch.manual_seed(0)
    policy = RouterPolicy(obs_dim=8, num_actions=3, query_hidden=[32], score_hidden=[32], value_hidden=[8])
    before = policy.descriptors.detach().clone()
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    obs = torch.randn(256, 8)
    target = torch.where(obs[:, 0] > 0, 0, 2)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(policy(obs)[0], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    test_obs = torch.randn(256, 8)
    accuracy = (policy(test_obs)[0].argmax(-1) == torch.where(test_obs[:, 0] > 0, 0, 2)).float().mean()
    assert accuracy > 0.9
    assert not torch.equal(before, policy.descriptors.detach())


def test_config_checks_say_what_to_change():
    with pytest.raises(ValueError, match="policy.descriptor_dim=0"):
        RouterPolicyConfig(descriptor_dim=0)
    with pytest.raises(ValueError, match="policy.score_hidden"):
        RouterPolicy(obs_dim=4, num_actions=2, score_hidden=[])


@pytest.mark.parametrize(
    ("name", "schema", "cls"),
    [("mlp", MLPPolicyConfig, ActorCritic), ("router", RouterPolicyConfig, RouterPolicy)],
)
def test_yaml_composes_against_its_schema_and_instantiates(tmp_path, name, schema, cls):
    from hydra.utils import instantiate

    ConfigStore.instance().store(group="policy", name=f"{name}_schema", node=schema)
    (tmp_path / "root.yaml").write_text(f"defaults:\n  - _self_\n  - policy: {name}\n")
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / f"{name}.yaml").write_text((conf_dir() / "policy" / f"{name}.yaml").read_text())
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        cfg = compose(config_name="root")
        with pytest.raises(Exception, match="not_a_key"):
            compose(config_name="root", overrides=["policy.not_a_key=1"])
    assert isinstance(OmegaConf.to_object(cfg.policy), schema)
    policy = instantiate(cfg.policy, obs_dim=6, num_actions=3)
    assert isinstance(policy, cls)
    assert policy(torch.zeros(2, 6))[0].shape == (2, 3)
