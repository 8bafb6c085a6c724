"""The rendered chart agrees with itself and with the code it deploys.

Services select the pods they front on ports those pods declare; each component gets exactly the
env vars its Settings class reads; the operator's Role is exactly what the operator calls; every
pod is hardened the same way.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices, AliasPath
from pydantic_settings import BaseSettings

from mlkube.core import names
from tests.charts.manifests import (
    CHART,
    NAMESPACE,
    RELEASE,
    Doc,
    Rendered,
    component,
    containers,
    helm_template,
    name,
)

pytestmark = pytest.mark.charts

# Read by the MLflow client library itself (not by our Settings classes), set only when MLflow
# runs with basic auth.
MLFLOW_CLIENT_AUTH = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
# Settings whose *absence* means something (the code's default), so the chart sets them only when
# the value is given: no data URL -> Iris; no seed -> derived from the date; MODEL_VERSION unset ->
# the operator pins it (a value set by Helm would fight the operator).
OPTIONAL_ENV = {
    "training": {"TRAIN_DATA", "TRAIN_TARGET", "TRAIN_SEED", "GIT_COMMIT"},
    "serving": {"MODEL_VERSION"},
    "rollout": set(),
}
# The values file that sets every optional value.
FULL = "postgres-auth-values"


def settings_env(cls: type[BaseSettings]) -> set[str]:
    """The env var names a pydantic-settings class reads, from its fields and configuration."""
    config = cls.model_config
    prefix = config.get("env_prefix", "")
    case_sensitive = config.get("case_sensitive", False)
    out: set[str] = set()
    for field_name, info in cls.model_fields.items():
        alias = info.validation_alias or info.alias
        if isinstance(alias, str):
            out.add(alias)
        elif isinstance(alias, AliasChoices):
            out.update(c for c in alias.choices if isinstance(c, str))
        elif isinstance(alias, AliasPath):
            out.add(str(alias.path[0]))
        else:
            out.add(prefix + field_name)
    return out if case_sensitive else {n.upper() for n in out}


def component_settings() -> dict[str, type[BaseSettings]]:
    from jobs.settings import TrainSettings
    from rollout.settings import OperatorSettings
    from service.settings import Settings

    return {"training": TrainSettings, "serving": Settings, "rollout": OperatorSettings}


def app_containers(rendered: Rendered, comp: str) -> list[tuple[Doc, Doc]]:
    """(workload, main container) of every workload of a component."""
    return [
        (workload, template["spec"]["containers"][0])
        for workload, template in rendered.pods()
        if component(workload) == comp and workload["kind"] != "Pod"
    ]


def env_of(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


def test_settings_env_names_are_the_contract() -> None:
    """The helper computing env names from Settings classes agrees with the contract's lists."""
    envs = {comp: settings_env(cls) for comp, cls in component_settings().items()}
    assert {"MLFLOW_TRACKING_URI", "TRAIN_TRIGGER", "TRAIN_CONNECT_TIMEOUT"} <= envs["training"]
    assert {"MODEL_VERSION", "SERVE_PORT", "SERVE_BATCH_MAX_ROWS", "LOG_LEVEL"} <= envs["serving"]
    assert {"ROLLOUT_WEBHOOK_SECRET", "ROLLOUT_CLUSTER_WIDE", "LOG_LEVEL"} <= envs["rollout"]


@pytest.mark.parametrize("comp", ["training", "serving", "rollout"])
def test_chart_sets_exactly_the_env_the_code_reads(rendered: Rendered, comp: str) -> None:
    values = rendered.values
    enabled = values["training" if comp == "training" else comp]["enabled"]
    workloads = app_containers(rendered, comp)
    if not enabled:
        assert not workloads
        return
    assert workloads, f"{comp} renders no workload"
    cls = component_settings()[comp]
    read = settings_env(cls)
    auth = values["mlflow"]["enabled"] and values["mlflow"]["auth"]["enabled"]
    for workload, container in workloads:
        where = f"{rendered.name}: {workload['kind']} {workload['metadata']['name']}"
        env = env_of(container)
        set_by_chart = set(env) - (MLFLOW_CLIENT_AUTH if auth else set())
        assert set_by_chart <= read, f"{where} sets env the code ignores: {set_by_chart - read}"
        assert read - set_by_chart <= OPTIONAL_ENV[comp], (
            f"{where} misses env the code reads: {read - set_by_chart - OPTIONAL_ENV[comp]}"
        )
        if rendered.name == FULL:
            assert set_by_chart == read, f"{where}: not every setting is reachable from values"
        assert (set(env) & MLFLOW_CLIENT_AUTH) == (MLFLOW_CLIENT_AUTH if auth else set())

        # The values the chart sets are values the code accepts.
        literal = {k: e["value"] for k, e in env.items() if "value" in e and k in read}
        from_secrets = {k: "s3cr3t" for k, e in env.items() if "valueFrom" in e and k in read}
        cls.model_validate({**literal, **from_secrets})

        expected_uri = (
            f"http://{name('mlflow')}.{NAMESPACE}.svc:{values['mlflow']['service']['port']}"
            if values["mlflow"]["enabled"]
            else values["mlflow"]["externalUri"]
        )
        assert env["MLFLOW_TRACKING_URI"]["value"] == expected_uri


def test_webhook_registration_job_points_mlflow_at_the_operator(rendered: Rendered) -> None:
    from rollout.settings import OperatorSettings

    v = rendered.values
    jobs = [(w, t) for w, t in rendered.pods() if component(w) == "rollout-webhook"]
    registers = v["rollout"]["enabled"] and v["rollout"]["webhook"]["register"]
    registers = registers and (v["mlflow"]["enabled"] or bool(v["rollout"]["webhook"]["url"]))
    assert len(jobs) == int(registers)
    for job, template in jobs:
        assert "post-install" in job["metadata"]["annotations"]["helm.sh/hook"]
        (container,) = template["spec"]["containers"]
        in_cluster = f"http://{name('rollout')}.{NAMESPACE}.svc:{v['rollout']['service']['port']}"
        url = v["rollout"]["webhook"]["url"] or f"{in_cluster}/webhook"
        assert container["command"] == ["python", "-m", "rollout", "register-webhook", "--url", url]
        env = env_of(container)
        auth = MLFLOW_CLIENT_AUTH if v["mlflow"]["auth"]["enabled"] else set()
        assert set(env) - auth == {"MLFLOW_TRACKING_URI", "ROLLOUT_WEBHOOK_SECRET"}
        assert set(env) - auth <= settings_env(OperatorSettings)
        operator = rendered.get("Deployment", name("rollout"))["spec"]["template"]["spec"]
        secret = env_of(operator["containers"][0])["ROLLOUT_WEBHOOK_SECRET"]
        assert env["ROLLOUT_WEBHOOK_SECRET"] == secret  # MLflow signs with what the operator checks
    if registers and v["mlflow"]["enabled"]:  # and MLflow delivers to plain HTTP on a cluster IP
        server = rendered.get("Deployment", name("mlflow"))["spec"]["template"]["spec"]
        server_env = env_of(server["containers"][0])
        assert server_env["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"]["value"] == "http,https"
        assert server_env["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"]["value"] == "true"
        assert "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY" in server_env


def test_training_runs_the_job_and_serving_the_server(renders: dict[str, Rendered]) -> None:
    r = renders["default"]
    for workload, container in app_containers(r, "training"):
        assert container["command"] == ["python", "-m", "jobs.train"]
        trigger = env_of(container)["TRAIN_TRIGGER"]["value"]
        assert trigger == ("cron" if workload["kind"] == "CronJob" else "manual")
    ((_, serve),) = app_containers(r, "serving")
    assert serve["command"] == ["python", "-m", "service"]
    ((_, operator),) = app_containers(r, "rollout")
    assert operator["command"] == ["python", "-m", "rollout"]


def _ports(template: Doc) -> dict[str | int, int]:
    """Ports a pod declares, by name and by number."""
    out: dict[str | int, int] = {}
    for c in containers(template, init=False):
        for p in c.get("ports", []):
            out[p["containerPort"]] = p["containerPort"]
            if "name" in p:
                out[p["name"]] = p["containerPort"]
    return out


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_services_select_the_pods_they_front_on_declared_ports(rendered: Rendered) -> None:
    pods = [(w, t) for w, t in rendered.pods() if w["kind"] != "Pod"]
    for svc in rendered.of_kind("Service"):
        selector = svc["spec"]["selector"]
        fronted = [(w, t) for w, t in pods if _labels_match(selector, t["metadata"]["labels"])]
        assert len(fronted) == 1, (
            f"Service {svc['metadata']['name']} selects {len(fronted)} workloads"
        )
        workload, template = fronted[0]
        assert component(workload) == component(svc)
        declared = _ports(template)
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in declared, (
                f"Service {svc['metadata']['name']} targets {port['targetPort']}, "
                f"not a port of {workload['metadata']['name']}"
            )


def test_probes_target_ports_the_container_declares(rendered: Rendered) -> None:
    for workload, template in rendered.pods():
        declared = _ports(template)
        for c in containers(template, init=False):
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                action = c.get(probe, {})
                for kind in ("httpGet", "tcpSocket"):
                    if kind in action:
                        assert action[kind]["port"] in declared, (
                            f"{workload['metadata']['name']}/{c['name']} {probe} "
                            f"port {action[kind]['port']} is not declared"
                        )


def test_ingress_and_route_point_at_the_serving_service(rendered: Rendered) -> None:
    services = {s["metadata"]["name"]: s for s in rendered.of_kind("Service")}
    for ing in rendered.of_kind("Ingress"):
        assert (
            ing["spec"].get("ingressClassName", "")
            == rendered.values["serving"]["ingress"]["className"]
            or not rendered.values["serving"]["ingress"]["className"]
        )
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                port_names = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
                assert backend["port"]["name"] in port_names
    for route in rendered.of_kind("HTTPRoute"):
        assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
        assert route["spec"]["parentRefs"], "an HTTPRoute needs a Gateway"
        for rule in route["spec"]["rules"]:
            for ref in rule["backendRefs"]:
                ports = {p["port"] for p in services[ref["name"]]["spec"]["ports"]}
                assert ref["port"] in ports


def test_targets_set_their_ingress_class(renders: dict[str, Rendered]) -> None:
    assert renders["kind"].get("Ingress", name("serving"))["spec"]["ingressClassName"] == (
        "cloud-provider-kind"
    )
    eks = renders["eks"].get("Ingress", name("serving"))
    assert eks["spec"]["ingressClassName"] == "alb"
    assert eks["metadata"]["annotations"]["alb.ingress.kubernetes.io/target-type"] == "ip"


def test_operator_role_is_exactly_what_the_operator_calls(rendered: Rendered) -> None:
    from rollout.rbac import RULES, permissions

    if not rendered.values["rollout"]["enabled"]:
        assert not rendered.of_kind("Role")
        assert not rendered.of_kind("ClusterRole")
        return
    cluster_wide = rendered.values["rollout"]["clusterWide"]
    kind = "ClusterRole" if cluster_wide else "Role"
    (role,) = rendered.of_kind(kind)
    assert not rendered.of_kind("Role" if cluster_wide else "ClusterRole")
    assert permissions(role["rules"]) == permissions(RULES)
    assert all("*" not in v for rule in role["rules"] for v in rule.values())

    (binding,) = rendered.of_kind(f"{kind}Binding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": kind,
        "name": role["metadata"]["name"],
    }
    ((operator, template),) = [(w, t) for w, t in rendered.pods() if component(w) == "rollout"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": template["spec"]["serviceAccountName"],
            "namespace": NAMESPACE,
        }
    ]
    env = env_of(template["spec"]["containers"][0])
    assert env["ROLLOUT_CLUSTER_WIDE"]["value"] == str(cluster_wide).lower()
    assert env["ROLLOUT_NAMESPACE"]["value"] == ("" if cluster_wide else NAMESPACE)


def test_only_the_operator_mounts_an_api_token(rendered: Rendered) -> None:
    accounts = {a["metadata"]["name"]: a for a in rendered.of_kind("ServiceAccount")}
    for workload, template in rendered.pods():
        spec = template["spec"]
        is_operator = component(workload) == "rollout"
        assert spec["automountServiceAccountToken"] is is_operator, workload["metadata"]["name"]
        account = accounts.get(spec["serviceAccountName"])  # None: made by the user
        if account is not None:
            assert account["automountServiceAccountToken"] is is_operator


def _assert_hardened(where: str, pod_spec: Doc, container: Doc, values: dict[str, Any]) -> None:
    uid = values["podSecurityContext"]["runAsUser"]
    pod_sc = pod_spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True, where
    assert pod_sc["runAsUser"] == uid >= 10000, where
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True, where
    assert sc["runAsUser"] == uid, where
    assert sc["readOnlyRootFilesystem"] is True, where
    assert sc["allowPrivilegeEscalation"] is False, where
    assert sc["capabilities"] == {"drop": ["ALL"]}, where
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{where}: {bound}"
    image = container["image"]
    assert "@sha256:" in image or (":" in image.rsplit("/", 1)[-1]), f"{where}: untagged {image}"
    assert not image.endswith(":latest"), where
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    assert "emptyDir" in volumes[mounts["/tmp"]], f"{where}: no emptyDir at /tmp"


def test_every_pod_is_hardened(rendered: Rendered) -> None:
    pods = rendered.pods()
    assert pods
    for workload, template in pods:
        for c in containers(template):
            where = (
                f"{rendered.name}: {workload['kind']} {workload['metadata']['name']}/{c['name']}"
            )
            _assert_hardened(where, template["spec"], c, rendered.values)


def test_images_follow_the_registry_and_tag_values(renders: dict[str, Rendered]) -> None:
    images = {
        c["image"]
        for _, t in renders["default"].pods()
        for c in containers(t)
        if "postgres" not in c["image"]
    }
    assert images == {f"mlkube-{n}:0.1.0" for n in ("mlflow", "train", "serve", "rollout")}
    eks = {c["image"] for _, t in renders["eks"].pods() for c in containers(t)}
    registry = renders["eks"].values["image"]["registry"]
    assert all(i.startswith(f"{registry}/mlkube-") for i in eks)
    minimal = {c["image"] for _, t in renders["minimal-values"].pods() for c in containers(t)}
    assert f"mlkube-serve@{renders['minimal-values'].values['serving']['image']['digest']}" in (
        minimal
    )


def test_serving_rolls_without_losing_a_request(rendered: Rendered) -> None:
    if not rendered.values["serving"]["enabled"]:
        return
    deploy = rendered.get("Deployment", name("serving"))
    spec = deploy["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    if rendered.values["serving"]["autoscaling"]["enabled"]:
        assert "replicas" not in spec
        assert rendered.get("HorizontalPodAutoscaler", name("serving"))
    else:
        assert spec["replicas"] == rendered.values["serving"]["replicas"]
    container = spec["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz/live"
    # What tells the operator which model and alias this Deployment serves.
    model = rendered.values["model"]
    assert deploy["metadata"]["labels"][names.LABEL_MODEL_NAME] == model["name"]
    assert deploy["metadata"]["annotations"][names.ANNOTATION_MODEL_ALIAS] == model["alias"]
    if rendered.values["serving"]["pdb"]["enabled"]:
        pdb = rendered.get("PodDisruptionBudget", name("serving"))
        assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_a_pinned_model_version_holds_off_the_operator(rendered: Rendered) -> None:
    """serving.modelVersion and the operator never own MODEL_VERSION at once: a chart pin sets
    the hold the operator obeys (issue #12.7). A pod that turns ready and crashes at once does
    not complete a rollout (minReadySeconds)."""
    if not rendered.values["serving"]["enabled"]:
        return
    deploy = rendered.get("Deployment", name("serving"))
    pinned = rendered.values["serving"]["modelVersion"]
    annotations = deploy["metadata"]["annotations"]
    env = {
        v["name"]: v.get("value")
        for v in deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    if pinned:
        assert env[names.ENV_MODEL_VERSION] == pinned
        assert pinned in annotations[names.ANNOTATION_ROLLOUT_HOLD]
    else:
        assert names.ENV_MODEL_VERSION not in env
        assert names.ANNOTATION_ROLLOUT_HOLD not in annotations
    assert deploy["spec"]["minReadySeconds"] == rendered.values["serving"]["minReadySeconds"] > 0
    strategy = rendered.values["serving"]["rolloutStrategy"]
    assert annotations["mlkube.io/rollout-strategy"] == strategy
    if strategy == "canary":
        assert annotations["mlkube.io/canary-seconds"] == str(
            rendered.values["serving"]["canarySeconds"]
        )


def test_operator_readiness_follows_the_api_server(rendered: Rendered) -> None:
    if rendered.values["rollout"]["enabled"]:
        spec = rendered.get("Deployment", name("rollout"))["spec"]["template"]["spec"]
        probe = spec["containers"][0]["readinessProbe"]["httpGet"]
        assert (probe["path"], probe["port"]) == ("/healthz/ready", "http")


def test_default_serving_has_two_replicas(renders: dict[str, Rendered]) -> None:
    assert renders["default"].get("Deployment", name("serving"))["spec"]["replicas"] == 2


def test_operator_and_mlflow_run_one_pod_at_a_time(rendered: Rendered) -> None:
    for comp in ("rollout", "mlflow"):
        if rendered.values[comp]["enabled"]:
            spec = rendered.get("Deployment", name(comp))["spec"]
            assert spec["replicas"] == 1
            assert spec["strategy"] == {"type": "Recreate"}


def test_training_cronjob_is_scheduled_as_configured(rendered: Rendered) -> None:
    t = rendered.values["training"]
    if not t["enabled"]:
        assert not rendered.of_kind("CronJob")
        return
    # `kubectl create job --from=cronjob/mlkube-training` (make train) relies on this name.
    spec = rendered.get("CronJob", f"{RELEASE}-training")["spec"]
    assert spec["schedule"] == t["schedule"]
    assert spec["timeZone"] == t["timeZone"]
    assert spec["concurrencyPolicy"] == t["concurrencyPolicy"]
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == t["backoffLimit"]
    assert job["activeDeadlineSeconds"] == t["activeDeadlineSeconds"]
    hooks = [j for j in rendered.of_kind("Job") if component(j) == "training"]
    assert len(hooks) == int(t["firstRun"]["enabled"])
    for hook in hooks:
        assert hook["metadata"]["annotations"]["helm.sh/hook"] == "post-install"


def test_mlflow_accepts_its_service_names_and_upgrades_its_schema(rendered: Rendered) -> None:
    m = rendered.values["mlflow"]
    if not m["enabled"]:
        assert not [w for w, _ in rendered.pods() if component(w) == "mlflow"]
        return
    template = rendered.get("Deployment", name("mlflow"))["spec"]["template"]
    init = template["spec"]["initContainers"][-1]  # after wait-for-db, with a database server
    assert init["command"][:3] == ["mlflow", "db", "upgrade"]
    server = template["spec"]["containers"][0]
    assert server["command"] == ["mlflow", "server"]
    args = server["args"]
    assert {"--serve-artifacts", "--host=0.0.0.0", f"--port={m['containerPort']}"} <= set(args)
    assert ("--expose-prometheus=/tmp/prometheus" in args) is m["prometheus"]
    assert ("--app-name=basic-auth" in args) is m["auth"]["enabled"]
    env = env_of(server)
    hosts = set(env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(","))
    svc, port = name("mlflow"), m["service"]["port"]
    for host in (svc, f"{svc}.{NAMESPACE}", f"{svc}.{NAMESPACE}.svc"):
        assert {host, f"{host}:{port}"} <= hosts
    assert {"localhost", "localhost:*"} <= hosts  # kubectl port-forward to localhost:5000
    assert set(m["allowedHosts"]) <= hosts
    backend = env["MLFLOW_BACKEND_STORE_URI"]
    if m["backend"]["type"] == "external":
        assert backend["valueFrom"]["secretKeyRef"]["name"] == m["backend"]["existingSecret"]
    elif m["backend"]["type"] == "postgres":
        assert backend["value"].startswith(
            f"postgresql://mlflow:$(POSTGRES_PASSWORD)@{name('postgres')}:"
        )
        assert rendered.get("StatefulSet", name("postgres"))
    else:
        assert backend["value"] == "sqlite:////mlflow/mlflow.db"
    destination = next(a for a in args if a.startswith("--artifacts-destination="))
    if m["artifacts"]["type"] == "s3":
        assert destination.endswith(m["artifacts"]["s3Uri"])
    if rendered.values["rollout"]["enabled"]:
        assert env["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"]["value"] == "http,https"


def test_helm_tests_check_mlflow_and_serving_through_their_services(
    renders: dict[str, Rendered],
) -> None:
    tests = {
        p["metadata"]["name"]: p
        for p in renders["default"].of_kind("Pod")
        if p["metadata"]["annotations"].get("helm.sh/hook") == "test"
    }
    assert set(tests) == {name("test-mlflow"), name("test-serving")}
    mlflow_urls = tests[name("test-mlflow")]["spec"]["containers"][0]["command"][-2:]
    assert mlflow_urls[0] == f"http://{name('mlflow')}.{NAMESPACE}.svc:5000/health"
    serving_urls = tests[name("test-serving")]["spec"]["containers"][0]["command"][-2:]
    assert serving_urls[0] == f"http://{name('serving')}.{NAMESPACE}.svc:80/healthz/ready"


def test_secret_refs_name_keys_the_chart_renders(rendered: Rendered) -> None:
    """Every secretKeyRef and secret volume that names a chart-made Secret finds its key."""
    secrets = {s["metadata"]["name"]: set(s["data"]) for s in rendered.of_kind("Secret")}
    existing = {
        rendered.values["mlflow"]["backend"]["existingSecret"],
        rendered.values["mlflow"]["auth"]["existingSecret"],
        rendered.values["mlflow"]["webhooks"]["existingSecret"],
        rendered.values["postgres"]["existingSecret"],
        rendered.values["rollout"]["webhook"]["existingSecret"],
    } - {""}
    refs = []
    for workload, template in rendered.pods():
        for c in containers(template):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.append((workload, ref["name"], ref["key"]))
        for volume in template["spec"].get("volumes", []):
            if "secret" in volume:
                for item in volume["secret"]["items"]:
                    refs.append((workload, volume["secret"]["secretName"], item["key"]))
    for workload, secret, key in refs:
        if secret in existing:
            continue  # made by the user, documented in values.yaml
        assert secret in secrets, f"{workload['metadata']['name']} uses missing Secret {secret}"
        assert key in secrets[secret], f"{workload['metadata']['name']}: {secret} has no {key}"


def test_generated_webhook_encryption_key_is_a_fernet_key(renders: dict[str, Rendered]) -> None:
    """MLflow encrypts stored webhook secrets with this key and refuses a malformed one."""
    from cryptography.fernet import Fernet

    secret = renders["default"].get("Secret", name("mlflow"))
    fernet = Fernet(base64.b64decode(secret["data"]["webhook-encryption-key"]))
    assert fernet.decrypt(fernet.encrypt(b"hmac")) == b"hmac"


def test_generated_secrets_outlive_the_release(renders: dict[str, Rendered]) -> None:
    """`helm uninstall` keeps what the chart generated: MLflow's PVC, Postgres' volume or an
    external database survive an uninstall, and their data is encrypted with (webhook key) or
    guarded by (database password) these values; a reinstall must find the same ones."""
    expected = {
        name("mlflow"): "webhook-encryption-key",
        name("mlflow-auth"): "admin-password",
        name("postgres"): "password",
        name("rollout-webhook"): "webhook-secret",
    }
    full = {s["metadata"]["name"]: s for s in renders[FULL].of_kind("Secret")}
    assert set(full) == set(expected), "the full values file renders every generated Secret"
    for secret, key in expected.items():
        assert key in full[secret]["data"]
    for rendered in renders.values():
        for secret in rendered.of_kind("Secret"):
            annotations = secret["metadata"].get("annotations") or {}
            assert annotations.get("helm.sh/resource-policy") == "keep", (
                f"{rendered.name}: Secret {secret['metadata']['name']} is deleted by helm "
                "uninstall while the data it protects stays"
            )


def test_existing_secrets_replace_the_generated_ones() -> None:
    """GitOps (`helm template`, Argo CD): `lookup` is empty there, so generated values would change
    on every render; each generated Secret has an `existingSecret` that switches it off."""
    proc = helm_template(
        "-f",
        str(CHART / "ci" / f"{FULL}.yaml"),
        "--set",
        "mlflow.webhooks.existingSecret=mine-webhooks,mlflow.auth.existingSecret=mine-auth",
        "--set",
        "postgres.existingSecret=mine-pg,rollout.webhook.existingSecret=mine-hmac",
    )
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"] == []
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob")
        for c in containers(
            d["spec"]["jobTemplate"]["spec"]["template"]
            if d["kind"] == "CronJob"
            else d["spec"]["template"]
        )
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert {"mine-webhooks", "mine-auth", "mine-pg", "mine-hmac"} <= refs


# component label -> where its serviceAccount values live
SERVICE_ACCOUNT_VALUES = {
    "mlflow": ("mlflow",),
    "postgres": ("postgres",),
    "training": ("training",),
    "serving": ("serving",),
    "rollout": ("rollout",),
    "rollout-webhook": ("rollout", "webhook"),
    "test": ("tests",),
}


def _service_account_values(values: dict[str, Any], comp: str) -> dict[str, Any]:
    node = values
    for key in SERVICE_ACCOUNT_VALUES[comp]:
        node = node[key]
    return dict(node["serviceAccount"])


def test_pods_run_as_the_service_account_their_values_name(rendered: Rendered) -> None:
    accounts = {a["metadata"]["name"]: a for a in rendered.of_kind("ServiceAccount")}
    made = set()
    for workload, template in rendered.pods():
        comp = component(workload)
        sa = _service_account_values(rendered.values, comp)
        base = name("test") if comp == "test" else name(comp)
        expected = sa["name"] or (base if sa["create"] else "default")
        assert template["spec"]["serviceAccountName"] == expected, workload["metadata"]["name"]
        if sa["create"]:
            made.add(expected)
            account = accounts[expected]
            assert component(account) == comp
            assert (account["metadata"].get("annotations") or {}).items() >= sa[
                "annotations"
            ].items()
        else:
            assert expected not in accounts, f"{expected} is the user's, not the chart's"
    assert set(accounts) == made, "every ServiceAccount the chart makes is used by a pod"
    if rendered.values["rollout"]["enabled"]:
        (binding,) = [
            b for b in rendered.docs if b["kind"] in ("RoleBinding", "ClusterRoleBinding")
        ]
        assert (
            binding["subjects"][0]["name"]
            == (
                rendered.get("Deployment", name("rollout"))["spec"]["template"]["spec"][
                    "serviceAccountName"
                ]
            )
        )


def test_service_account_not_created_falls_back_to_default() -> None:
    proc = helm_template("--set", "serving.serviceAccount.create=false")
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    serving = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name("serving")
    )
    assert serving["spec"]["template"]["spec"]["serviceAccountName"] == "default"
    assert name("serving") not in {
        d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"
    }


def test_ports_come_from_values() -> None:
    proc = helm_template(
        "--set", "serving.containerPort=9000,mlflow.containerPort=5001,rollout.containerPort=8001"
    )
    assert proc.returncode == 0, proc.stderr
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(proc.stdout) if d}
    for comp, port in (("serving", 9000), ("mlflow", 5001), ("rollout", 8001)):
        template = docs[("Deployment", name(comp))]["spec"]["template"]
        (container,) = template["spec"]["containers"]
        assert {"name": "http", "containerPort": port, "protocol": "TCP"} in container["ports"]
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        policy = docs[("NetworkPolicy", name(comp))]
        assert port in {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    serve_env = env_of(
        docs[("Deployment", name("serving"))]["spec"]["template"]["spec"]["containers"][0]
    )
    assert serve_env["SERVE_PORT"]["value"] == "9000"


def test_the_charts_classifiers_are_the_training_jobs() -> None:
    """`training.classifier` accepts exactly what `python -m jobs.train --classifier` does: a
    classifier the job gains is deployable, and the chart offers none the job lacks."""
    import json
    import typing

    from jobs.settings import Classifier

    schema = json.loads((CHART / "values.schema.json").read_text())
    enum = schema["properties"]["training"]["properties"]["classifier"]["enum"]
    assert sorted(enum) == sorted(typing.get_args(Classifier))
