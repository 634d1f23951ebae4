"""rl-router: reinforcement learning for router policies."""

__version__ = "0.1.0"
