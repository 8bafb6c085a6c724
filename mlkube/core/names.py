"""Names shared by the code, the chart and the operator: one place, so they cannot drift."""

DEFAULT_MODEL_NAME = "iris-classifier"
DEFAULT_ALIAS = "production"

# Kubernetes labels/annotations. The operator finds serving Deployments by LABEL_MODEL_NAME,
# reads the alias from ANNOTATION_MODEL_ALIAS and pins ANNOTATION_MODEL_VERSION on the pod template.
PREFIX = "mlkube.io"
LABEL_MODEL_NAME = f"{PREFIX}/model-name"
ANNOTATION_MODEL_ALIAS = f"{PREFIX}/model-alias"
ANNOTATION_MODEL_VERSION = f"{PREFIX}/model-version"
ANNOTATION_PREVIOUS_MODEL_VERSION = f"{PREFIX}/previous-model-version"

# The serving container's env vars the operator reads and pins (the chart sets them).
ENV_MODEL_VERSION = "MODEL_VERSION"
ENV_MODEL_NAME = "MODEL_NAME"

# Tags written to MLflow runs and model versions.
TAG_PREFIX = "mlkube"
