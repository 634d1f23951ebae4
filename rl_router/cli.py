"""``rl-router train | eval | export | calibrate | serve [hydra overrides]``.

Each command is a Hydra app over ``conf/`` (the root configs ``config.yaml``, ``eval.yaml``,
``export.yaml``, ``calibrate.yaml`` and ``serve.yaml``), so every Hydra feature works: ``key=value``
overrides, ``--multirun`` sweeps, ``--cfg job`` to print the composed config. Only this module
touches ``DictConfig``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

COMMANDS = {
    "train": ("config", "train a router (default experiment: `experiment=default`)"),
    "eval": ("eval", "evaluate a router against baselines: `checkpoint=<run dir | exported folder>`"),
    "export": ("export", "write a Hub-ready folder: `checkpoint=<run dir> repo_id=<name> [push=true]`"),
    "calibrate": (
        "calibrate",
        "set a policy router's operating point: `checkpoint=<run | export> target.share=<0..1>` "
        "or `target.cost_per_query=<usd>`",
    ),
    "serve": (
        "serve",
        "an OpenAI-compatible endpoint on Ray Serve: `checkpoint=<run | export | repo id> [pool=<option>]`",
    ),
}


def conf_dir() -> Path:
    """The ``conf/`` tree: ``$RL_ROUTER_CONF`` or the one beside the package (editable installs)."""
    path = Path(os.environ.get("RL_ROUTER_CONF", Path(__file__).resolve().parents[1] / "conf"))
    if not (path / "config.yaml").is_file():
        raise SystemExit(f"rl-router: no config tree at {path}; set RL_ROUTER_CONF to the repo's conf/ dir")
    return path


def experiments() -> dict[str, str]:
    """Experiment name -> the first comment line of its file (what it runs)."""
    found = {}
    for path in sorted((conf_dir() / "experiment").glob("*.yaml")):
        # the first comment that is not Hydra's `# @package` header
        comments = [
            line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("#")
        ]
        found[path.stem] = next((c for c in comments if not c.startswith("@")), "")
    return found


def usage() -> str:
    lines = [f"usage: rl-router {{{','.join(COMMANDS)}}} [hydra overrides]", "", "commands:"]
    lines += [f"  {name:<11}{text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "experiments (rl-router train experiment=<name>):"]
    lines += [f"  {name:<16}{text}" for name, text in experiments().items()]
    lines += [
        "",
        "examples:",
        "  rl-router train experiment=default",
        "  rl-router train experiment=default debug=tiny logger=none",
        "  rl-router train --cfg job            # print the composed config",
        "  rl-router eval checkpoint=outputs/default/<date>_<time>",
        "  rl-router calibrate checkpoint=outputs/default/<date>_<time> target.share=0.3",
        "  rl-router serve checkpoint=outputs/default/<date>_<time> pool=<option> serve.port=8000",
    ]
    return "\n".join(lines)


def run_dir_resolver(resume: str | None, root: str, name: str) -> str:
    """``hydra.run.dir``: the run being resumed, else ``<root>/<name>/<date>_<time>``."""
    if resume:
        return str(resume)
    return f"{root}/{name}/{datetime.now():%Y-%m-%d_%H-%M-%S}"


def _register() -> None:
    """The structured configs and the run-dir resolver that ``conf/`` needs (once per process)."""
    from rl_router.registry import register_configs

    register_configs()
    if not OmegaConf.has_resolver("rl_run_dir"):
        OmegaConf.register_new_resolver("rl_run_dir", run_dir_resolver, use_cache=True)


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """The root config ``name`` of ``conf/`` with ``overrides``, composed outside a Hydra app (for
    scripts that call a command's function directly)."""
    from hydra import compose, initialize_config_dir

    _register()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def _train(cfg: DictConfig) -> None:
    from rl_router.recipes import run_training

    run_training(cfg)


def _eval(cfg: DictConfig) -> None:
    from rl_router.eval.run import run_eval

    run_eval(cfg)


def _export(cfg: DictConfig) -> None:
    from rl_router.hub import run_export

    run_export(cfg)


def _calibrate(cfg: DictConfig) -> None:
    from rl_router.eval.calibrate import run_calibrate

    run_calibrate(cfg)


def _serve(cfg: DictConfig) -> None:
    from rl_router.serve.deployment import run_serve

    run_serve(cfg)


TASKS: dict[str, Callable[[DictConfig], None]] = {
    "train": _train,
    "eval": _eval,
    "export": _export,
    "calibrate": _calibrate,
    "serve": _serve,
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``rl-router`` console script."""
    import hydra

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    command, overrides = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"rl-router: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)

    _register()
    config_name = COMMANDS[command][0]
    app = hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")(TASKS[command])
    sys.argv = [f"rl-router {command}", *overrides]
    app()


if __name__ == "__main__":
    main()
