"""mlkube: shared pieces of the platform (names, MLflow connectivity, the embedded runner)."""

__version__ = "0.1.0"
