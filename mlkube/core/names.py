"""Names shared by the code, the chart and the operator: one place, so they cannot drift."""

DEFAULT_MODEL_NAME = "iris-classifier"
DEFAULT_ALIAS = "production"

# Kubernetes labels/annotations. The operator finds serving Deployments by LABEL_MODEL_NAME,
# reads the alias from ANNOTATION_MODEL_ALIAS and pins ANNOTATION_MODEL_VERSION on the pod template.
PREFIX = "mlkube.io"
LABEL_MODEL_NAME = f"{PREFIX}/model-name"
ANNOTATION_MODEL_ALIAS = f"{PREFIX}/model-alias"
ANNOTATION_MODEL_VERSION = f"{PREFIX}/model-version"
# Written by operator v1 in the pod template; v2 removes it whenever it patches the template.
ANNOTATION_PREVIOUS_MODEL_VERSION = f"{PREFIX}/previous-model-version"

# The rollout record: Deployment metadata (never the pod template, so writing it restarts no pod
# and a revert brings the old ReplicaSet back). Written by the operator, read by `make status`.
ANNOTATION_ROLLOUT_STATUS = f"{PREFIX}/rollout-status"  # the phase (rollout.plan.STATUS_*)
ANNOTATION_ROLLOUT_TARGET = f"{PREFIX}/rollout-target"  # the version being rolled out
ANNOTATION_STABLE_VERSION = f"{PREFIX}/stable-model-version"  # last version pods served
ANNOTATION_ROLLOUT_STARTED = f"{PREFIX}/rollout-started"  # when the operator patched (UTC)
ANNOTATION_ROLLOUT_REASON = f"{PREFIX}/rollout-reason"  # one line: why the record says so
# A hash of the pod template, the pin left out, as the operator last saw or wrote it: a different
# one means someone else changed the template (a new ReplicaSet). Not metadata.generation, which
# the API server also bumps for annotation changes, the operator's own record writes included.
ANNOTATION_ROLLOUT_TEMPLATE = f"{PREFIX}/rollout-template"
# Operator v2 before 0.4 recorded metadata.generation here; removed at the next record write.
ANNOTATION_ROLLOUT_GENERATION = f"{PREFIX}/rollout-generation"
ANNOTATION_FAILED_VERSION = f"{PREFIX}/failed-model-version"  # not rolled to again
# The last version that failed, kept for people after the alias moved off it, until a newer
# version succeeds.
ANNOTATION_LAST_FAILED_VERSION = f"{PREFIX}/last-failed-model-version"
# When every new pod first reported the same model load error (UTC): failed once confirmed.
ANNOTATION_LOAD_ERROR_SINCE = f"{PREFIX}/rollout-load-error-since"
# Set while the registry gives no answer: "since <time>: <error>" (a condition in the record).
ANNOTATION_REGISTRY_UNAVAILABLE = f"{PREFIX}/registry-unavailable"
ANNOTATION_ROLLOUT_ATTEMPT = f"{PREFIX}/rollout-attempt"  # failed tries not caused by the model
ANNOTATION_ROLLOUT_RETRY_AT = f"{PREFIX}/rollout-retry-at"  # next try (UTC), phase waiting
# Set by people (or the chart, when serving.modelVersion is pinned): the operator leaves the
# Deployment alone. The value says who and why.
ANNOTATION_ROLLOUT_HOLD = f"{PREFIX}/rollout-hold"
# Optional per Deployment: the operator's own deadline for one try, in seconds (default: the
# Deployment's progressDeadlineSeconds).
ANNOTATION_ROLLOUT_DEADLINE = f"{PREFIX}/rollout-deadline-seconds"
# Optional per Deployment: how long every new pod must report the same model load error before
# the version is failed (default 30; 0 waits for the deadline instead).
ANNOTATION_LOAD_ERROR_CONFIRM = f"{PREFIX}/load-error-confirm-seconds"

# The serving container's env vars the operator reads and pins (the chart sets them).
ENV_MODEL_VERSION = "MODEL_VERSION"
ENV_MODEL_NAME = "MODEL_NAME"

# Tags written to MLflow runs and model versions.
TAG_PREFIX = "mlkube"
