"""The local cluster of hack/cluster as a package: one :class:`~localcluster.config.Config`
built from the environment once, one module per component (its command line and readiness
check) in :mod:`localcluster.components`, whose ordered ``COMPONENTS`` list `up` starts, `down`
stops in reverse and `status` reports; manifests and configs as files beside the code.

``hack/cluster/cluster.py`` is the entry point; it puts this directory's parent on ``sys.path``."""
