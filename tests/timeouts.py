"""Every timing constant of the integration tests, in one place.

A test waits for the very condition it asserts, and fails only when that condition is not met
within a bound. The bounds are generous: a wait returns as soon as its condition holds, so a
long bound costs nothing on a quiet machine and keeps a busy one (`make test-flaky`, a CI runner
building images meanwhile) from failing a test that is merely slow. On a very slow machine,
stretch them all at once: ``MLKUBE_TEST_TIMEOUT_SCALE=3 make test``.
"""

from __future__ import annotations

from tests.settings import suite_settings

SCALE = suite_settings().timeout_scale

# Something the code under test does within a second or so on a quiet machine: a patch, a
# metric, an Event, a log line, a registry tag.
EVENTUAL_S = 30.0 * SCALE
# A child process (MLflow, `make up`, uvicorn, `mlflow models serve`) to answer, a model to
# load, a trained version to be swapped in.
PROCESS_START_S = 240.0 * SCALE
# A process or thread to stop after it was told to.
PROCESS_STOP_S = 60.0 * SCALE
# One HTTP request to a test server.
HTTP_S = 30.0 * SCALE
# How often a wait looks again.
POLL_S = 0.05

# How long a test watches for something that must NOT happen, when no event marks the end of
# the window (where the operator's poll cycles can be counted instead, tests count them). Not
# scaled: a longer window only makes such a check stricter.
QUIET_S = 1.5

# Containers (tests/containers): `<engine> run` to return, `<engine> rm -f` to finish, a Job's
# container (a training run) to exit, and `make images` from a cold cache (layer caching makes a
# second run take seconds).
CONTAINER_START_S = 120.0 * SCALE
CONTAINER_STOP_S = 60.0 * SCALE
CONTAINER_JOB_S = 600.0 * SCALE
IMAGE_BUILD_S = 3600.0 * SCALE

# pytest-timeout's limit for a test that starts several processes one after the other (MLflow,
# training, the server, MLflow again); pyproject.toml's 300 s suits the rest. Under load such a
# test took 236 s of those 300.
SLOW_TEST_S = 600.0 * SCALE

# The local cluster (tests/cluster): `hack/cluster/cluster.py up` from an empty cache builds
# Kubernetes, etcd, containerd, CoreDNS and Traefik from source first (about 40 minutes on 2
# busy cores; seconds when built); `mlkube deploy --env local` builds the four images and
# installs the chart (its own waits are bounded by --timeout per rollout); a rollout of the
# serving Deployment, a training Job, a rollback after a failed version.
CLUSTER_UP_S = 3 * 3600.0 * SCALE
CLUSTER_DEPLOY_S = 3600.0 * SCALE
CLUSTER_ROLLOUT_S = 600.0 * SCALE
