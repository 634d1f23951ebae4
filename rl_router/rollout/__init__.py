"""Episodes, as typed results: the one env factory and the one rollout driver.

Training (the GRPO bridge, the PPO recipe), evaluation and inference all build their envs with
:func:`~rl_router.rollout.env_factory.env_factory` and play LLM-router episodes with
:class:`~rl_router.rollout.driver.RolloutDriver`, which returns a
:class:`~rl_router.rollout.driver.RolloutResult` and knows no trainer.
"""
