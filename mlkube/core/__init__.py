"""The shared core, at the bottom of the house: what `jobs`, `service`, `rollout`,
`deploy` and `embedded` all use, written once. It imports none of them (a unit test checks).

- :mod:`mlkube.core.names`: labels, annotations, tags, env var names (the contract with the chart);
- :mod:`mlkube.core.backoff`: one backoff policy, which each caller configures;
- :mod:`mlkube.core.registry`: the MLflow registry client and one classification of its errors;
- :mod:`mlkube.core.settings`: the settings base every component's settings extend;
- :mod:`mlkube.core.deployment`: pure readers of a serving Deployment (the pinned version, the
  rollout's phase), used alike by the operator, the deploy driver and the end-to-end test;
- :mod:`mlkube.core.tracking`: waiting for the tracking server to answer;
- :mod:`mlkube.core.console`: the progress output of `make up` and `make deploy`;
- :mod:`mlkube.core.processes`: a free port, stopping a child's whole process group.
"""
