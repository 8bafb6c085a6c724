"""The deploy driver's old name, kept so ``python -m mlkube.deploy <command>`` still runs: it is
now the ``deploy`` component (``mlkube <command>``, or ``python -m deploy <command>``).

Not part of the core: this package imports nothing, and only ``python -m mlkube.deploy`` runs
its ``__main__``, which forwards (tests/unit/core/test_layers.py checks both)."""
