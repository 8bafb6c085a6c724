# mlkube: `make up` tries it on one machine, `make test` checks everything, `make deploy` puts it on Kubernetes.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec
.DEFAULT_GOAL := help

# Knobs: override on the command line, e.g. make up MLFLOW_PORT=5001
PYTHON ?= python3
VENV ?= .venv
ENV ?= kind
KIND_CLUSTER ?= mlkube
NAMESPACE ?= mlkube
RELEASE ?= mlkube
# Image tag; empty = the chart appVersion (on kind plus the image id, so a rebuilt image rolls its pods).
IMG_TAG ?=
IMAGE_REGISTRY ?=
# Builds with docker if its daemon answers, else podman; BASE_IMAGE empty: python:3.11-slim, or
# the local Debian base (images/local-base.sh) when that cannot be pulled.
CONTAINER_ENGINE ?=
BASE_IMAGE ?=
VALUES ?=
MLFLOW_PORT ?= 5000
SERVE_PORT ?= 8080
STATE_DIR ?= .mlkube
# Seconds make up waits for MLflow and for the model server (each) before it gives up.
UP_TIMEOUT ?= 180
PYTEST_ARGS ?=
# make test-flaky: how many times each integration test runs (under CPU load).
FLAKY_COUNT ?= 3

PY := $(VENV)/bin/python
# The one command for what a person runs (mlkube/__main__.py): up, train and the deploy driver's.
MLKUBE := $(VENV)/bin/mlkube
# Tool versions (uv for the venv and the images, helm, kubectl, linters): tools.versions.
include tools.versions
BIN := $(CURDIR)/bin
# Your own helm/kubectl/kind come first; ./bin (make tools) is the fallback.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH):$(BIN)

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	/^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } \
	/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Quick start

.PHONY: up
up: venv ## Run MLflow, one training run and the model server on this machine (Ctrl-C stops all)
	$(MLKUBE) up --mlflow-port $(MLFLOW_PORT) --serve-port $(SERVE_PORT) --state-dir $(STATE_DIR) \
		--timeout $(UP_TIMEOUT)

.PHONY: test
test: lint test-suite ## Run every test: lint, unit, integration (real MLflow + uvicorn), charts, containers, cluster

.PHONY: test-suite
test-suite: venv tools ## Every test layer without lint (CI's test jobs: lint runs once, in its own job)
	$(PY) -m pytest $(PYTEST_ARGS)

##@ Development

.PHONY: train
train: venv ## Run one training run: on the cluster when ENV is set to a cluster, else against the local MLflow
ifeq ($(origin ENV),command line)
	$(MLKUBE) train $(DEPLOY_ARGS)
else
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-http://127.0.0.1:$(MLFLOW_PORT)} \
		TRAIN_CONNECT_TIMEOUT=$${TRAIN_CONNECT_TIMEOUT:-10} $(MLKUBE) train --trigger manual
endif

# The unit layer needs none of these plugins, whose imports (hypothesis above all) cost seconds.
NO_HEAVY_PLUGINS = -p no:kmock -p no:schemathesis -p no:hypothesispytest

.PHONY: test-unit
test-unit: venv ## Unit tests: pure logic, no subprocess, seconds
	$(PY) -m pytest tests/unit $(NO_HEAVY_PLUGINS) $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: venv ## Integration tests: real MLflow, uvicorn, `make up`, the operator on an API emulator
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

.PHONY: test-charts
test-charts: venv tools ## Chart checks: helm lint/template of every values file, schemas, checkov, hadolint
	$(PY) -m pytest tests/charts $(PYTEST_ARGS)

.PHONY: test-containers
test-containers: venv tools ## Build the four images and run them as the chart runs them (Docker or Podman)
	$(PY) -m pytest tests/containers $(PYTEST_ARGS)

.PHONY: test-cluster
test-cluster: venv tools ## A real Kubernetes here (hack/cluster, root), mlkube deployed on it by ENV=local, its e2e
	$(PY) -m pytest tests/cluster $(PYTEST_ARGS)

.PHONY: test-flaky
test-flaky: venv ## Run the integration tests FLAKY_COUNT (3) times over with every core kept busy
	scripts/with-cpu-load.sh $(PY) -m pytest tests/integration -p no:cacheprovider \
		--count=$(FLAKY_COUNT) --repeat-scope=session $(PYTEST_ARGS)

.PHONY: lint
lint: venv tools ## ruff, mypy --strict, actionlint (with shellcheck) and shellcheck of the scripts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(BIN)/actionlint -no-color
	$(BIN)/shellcheck -x .ci/run scripts/*.sh images/*.sh hack/cluster/build.sh

.PHONY: fmt
fmt: venv ## Format the code with ruff
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: bench
bench: venv ## Benchmark the model server against `mlflow models serve` and a bare uvicorn ceiling (needs wrk)
	@command -v wrk >/dev/null || { echo "wrk is missing: install it (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk)"; exit 1; }
	$(PY) -m bench.serve

.PHONY: bench-cluster
bench-cluster: venv tools ## Figures of the local cluster: cold/warm start, deploy, e2e, rollout time by webhook and by poll (root)
	$(PY) -m bench.cluster

.PHONY: clean
clean: ## Remove the local state (.mlkube), caches and the venv
	rm -rf .mlkube .pytest_cache .mypy_cache .ruff_cache $(VENV)

##@ Deployment (ENV=kind, the default: a local kind cluster; ENV=local: the host-process cluster of hack/cluster; ENV=eks: the current kube-context)

DEPLOY_ARGS = --env $(ENV) --cluster $(KIND_CLUSTER) --namespace $(NAMESPACE) --release $(RELEASE)
# PLATFORM (e.g. linux/arm64 for Graviton nodes): build with buildx for it and push.
IMAGE_ARGS = $(if $(IMG_TAG),--tag $(IMG_TAG)) $(if $(IMAGE_REGISTRY),--registry $(IMAGE_REGISTRY)) \
	$(if $(PLATFORM),--platform $(PLATFORM)) $(if $(CONTAINER_ENGINE),--engine $(CONTAINER_ENGINE)) \
	$(if $(BASE_IMAGE),--base-image $(BASE_IMAGE))

.PHONY: deploy
deploy: venv ## Cluster, images, Helm release, first training (ENV=eks: IMAGE_REGISTRY=..., VALUES=file)
	$(MLKUBE) deploy $(DEPLOY_ARGS) $(IMAGE_ARGS) $(if $(VALUES),--values $(VALUES))

.PHONY: images
images: venv ## Build the mlkube-{mlflow,train,serve,rollout} images with Docker or Podman, print their sizes
	$(MLKUBE) images $(DEPLOY_ARGS) $(IMAGE_ARGS)

.PHONY: ui
ui: venv ## Port-forward to the MLflow UI on http://127.0.0.1:MLFLOW_PORT (5000)
	$(MLKUBE) ui $(DEPLOY_ARGS) --port $(MLFLOW_PORT)

.PHONY: predict
predict: venv ## Send a prediction through the Ingress and show the answer
	$(MLKUBE) predict $(DEPLOY_ARGS)

.PHONY: status
status: venv ## Show the release, its pods, the served model version and the Ingress address
	$(MLKUBE) status $(DEPLOY_ARGS)

.PHONY: e2e
e2e: venv ## End-to-end test of the deployment: predict, promote, rollout under load (after make deploy)
	$(MLKUBE) e2e $(DEPLOY_ARGS)

.PHONY: destroy
destroy: venv ## Delete the kind cluster (ENV=local: stop the local cluster; ENV=eks: helm uninstall, needs YES=1)
	$(MLKUBE) destroy $(DEPLOY_ARGS) $(if $(YES),--yes)

##@ Dependencies

# Re-created whenever the pinned requirements change; uv makes it take seconds.
# Where the environment forbids writing bytecode at import (PYTHONDONTWRITEBYTECODE, as on CI
# runners), every Python start would compile MLflow, scikit-learn, FastAPI... from source: 6.9 s
# instead of 4.6 s to import the model server's stack here. Compile them once at install
# instead (about 26 s on 2 cores). Elsewhere Python writes the bytecode as it imports.
COMPILE_BYTECODE = $(if $(PYTHONDONTWRITEBYTECODE),--compile-bytecode,)

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --python $(PY) $(COMPILE_BYTECODE) -r requirements.txt
	$(VENV)/bin/uv pip install -q --python $(PY) -e . --no-deps
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with the pinned Python packages

.PHONY: lock
lock: ## Re-pin requirements.txt (hashed) from pyproject.toml, and each image's lock (same versions)
	@test -x $(VENV)/bin/uv || { $(PYTHON) -m venv $(VENV) && $(PY) -m pip install -q uv==$(UV_VERSION); }
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 --no-header --no-annotate \
		--generate-hashes -o requirements.txt
	for extra in server train serve rollout; do \
		$(VENV)/bin/uv pip compile pyproject.toml --extra $$extra -c requirements.txt --python-version 3.11 \
			--no-header --no-annotate --generate-hashes -q -o images/requirements/$$extra.txt; \
	done

.PHONY: tools
tools: ## Install pinned helm, kubectl, actionlint, hadolint and checkov into ./bin
	scripts/install-tools.sh helm kubectl actionlint hadolint checkov

.PHONY: docs
docs: venv chart-docs ## Regenerate the generated docs: docs/configuration.md and the chart's README and schema
	$(PY) scripts/config-reference.py

.PHONY: chart-docs
chart-docs: ## Regenerate the chart's values.schema.json and README values table from values.yaml (Go)
	scripts/chart-docs.sh

##@ Local cluster

# A single-node Kubernetes made of host processes (hack/cluster/): etcd, the
# control plane, containerd + runc, kubelet, CNI bridge, kube-proxy, CoreDNS.
# Binaries are built once into $(MLKUBE_CLUSTER_CACHE) (default
# /var/cache/mlkube-cluster); needs root. NODE=kwok: a fake node (control plane only).
CLUSTER := $(PYTHON) hack/cluster/cluster.py

.PHONY: cluster-up
cluster-up: ## Start the local cluster and import the mlkube images (kubeconfig: `hack/cluster/cluster.py env kubeconfig`)
	$(if $(NODE),MLKUBE_CLUSTER_NODE=$(NODE)) $(CLUSTER) up

.PHONY: cluster-images
cluster-images: ## Import the images from `make images` into the local cluster's node
	$(CLUSTER) images

.PHONY: cluster-down
cluster-down: ## Stop the local cluster and remove everything it made (processes, mounts, iptables, bridge)
	$(CLUSTER) down
