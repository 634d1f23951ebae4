"""Data layer: QA datasets (one schema for every source) and routing tables of recorded outcomes.

Modules (import the one you need; this package imports nothing heavy itself):

* :mod:`~rl_router.data.schema`: ``QAExample``, ``QA_FEATURES``, row validation.
* :mod:`~rl_router.data.qa`: local files and Router-R1's FlashRAG benchmarks (Hub or local mirror).
* :mod:`~rl_router.data.fanout_qa`: FanOutQA from the ``fanoutqa`` package.
* :mod:`~rl_router.data.reasoning_tasks`: reasoning-gym task mixtures and their verifiers.
* :mod:`~rl_router.data.routing_table`: ``RoutingTable`` (recorded outcomes per query and model).
* :mod:`~rl_router.data.routellm`: RouteLLM's data: ``load_routing_table``, ``load_routing_splits``,
  ``RoutingTableDataConfig``, the file readers.
* :mod:`~rl_router.data.tokens`: the deterministic token-count approximation used for recorded data.
"""
