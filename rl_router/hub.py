"""``rl-router export``: Hub-ready folders for trained routers.

Not built yet (it is the evaluation-and-export issue). The command exists so ``rl-router --help`` is
complete, and it says plainly that it does nothing rather than writing a half-made folder.
"""

from __future__ import annotations

from omegaconf import DictConfig


def run_export(cfg: DictConfig) -> None:
    raise SystemExit(
        "rl-router export is not implemented yet (it arrives with the evaluation-and-export issue); "
        f"nothing was written for checkpoint={cfg.get('checkpoint')}"
    )
