"""Test support, not a deploy step: the end-to-end check of a deployed release (``make e2e``,
the e2e-kind workflow, and the cluster tests, which reuse its load pod).

Nothing of ``make deploy``, ``make status`` & co. runs it: only the ``e2e`` plan
(:func:`deploy.plans.plan_e2e`), the command line's clean-up after it, and the record its steps
keep (:class:`deploy.state.E2EState`) name it. It ships with the deploy driver because
``make e2e`` runs from a checkout against any cluster the driver deployed to.

- :mod:`deploy.e2e.steps`: the steps (predict, weak champion, candidate, promote under load);
- :mod:`deploy.e2e.load`: a bounded load through the Ingress, and its report;
- :mod:`deploy.e2e.podload`: the same from a pod inside the cluster;
- :mod:`deploy.e2e.replicas`: what each serving replica says it serves;
- :mod:`deploy.e2e.diagnostics`: what a failed run dumps.

This package imports nothing itself, so ``deploy.state`` can name the load's report without
loading the harness."""
