"""The layout of an exported router folder: written by :mod:`rl_router.hub`, read by `routers.load`."""

ROUTER_CONFIG = "router_config.json"  # router kind, policy config or protocol, observation layout, versions
WEIGHTS = "model.safetensors"  # the weights, safetensors only
POOL = "pool.json"  # the candidate descriptors, in action order
FORMAT_VERSION = 1  # bumped when the folder layout changes incompatibly
ROUTER_KINDS = ("policy", "llm")
