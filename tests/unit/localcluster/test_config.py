"""The local cluster's config: built from the environment it is given, once, every path and
address derived from it; and what `cluster.py env` prints of it."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from deploy.localenv import LocalCluster
from deploy.options import app_version
from localcluster.cli import env_text, main
from localcluster.config import Config, ConfigError, read_versions

REPO = Path(__file__).resolve().parents[3]
K8S = read_versions(REPO / "hack" / "cluster" / "versions.env")["K8S_VERSION"]


def test_the_defaults() -> None:
    cfg = Config.from_env({})

    assert cfg.state == Path("/var/tmp/mlkube-cluster")
    assert cfg.kubeconfig == Path("/var/tmp/mlkube-cluster/kubeconfig")
    assert cfg.logs == Path("/var/tmp/mlkube-cluster/logs")
    assert cfg.cache == Path("/var/cache/mlkube-cluster") / K8S
    assert cfg.bin == cfg.cache / "bin"
    assert cfg.image_store == cfg.cache / "containerd-root"
    assert cfg.node_mode == "real"
    assert (cfg.node_ip, cfg.api_url) == ("10.244.0.1", "https://10.244.0.1:6443")
    assert (cfg.api_service_ip, cfg.dns_service_ip) == ("10.96.0.1", "10.96.0.10")
    assert cfg.images == ("mlflow", "train", "serve", "rollout")
    assert cfg.context == "mlkube-local"


def test_every_variable_is_read_from_the_environment_given() -> None:
    env = {
        "MLKUBE_CLUSTER_CACHE": "/c",
        "MLKUBE_CLUSTER_STATE": "/s",
        "MLKUBE_CLUSTER_NODE": "kwok",
        "MLKUBE_CLUSTER_NODE_NAME": "n1",
        "MLKUBE_CLUSTER_POD_CIDR": "10.50.0.0/24",
        "MLKUBE_CLUSTER_SERVICE_CIDR": "10.60.0.0/16",
        "MLKUBE_CLUSTER_BRIDGE": "br9",
        "MLKUBE_CLUSTER_API_PORT": "7443",
        "MLKUBE_CLUSTER_ETCD_PORT": "24000",
        "MLKUBE_CLUSTER_IMAGE_STORE": "/store",
        "MLKUBE_CLUSTER_IMAGES": "serve rollout",
        "MLKUBE_CLUSTER_IMAGE_TAG": "dev",
    }
    cfg = Config.from_env(env)

    assert cfg.cache == Path("/c") / K8S
    assert cfg.kubeconfig == Path("/s/kubeconfig")
    assert (cfg.node_mode, cfg.node_name, cfg.bridge) == ("kwok", "n1", "br9")
    assert cfg.pod_cidr == ipaddress.IPv4Network("10.50.0.0/24")
    assert cfg.node_ip == "10.50.0.1"  # the pod network's gateway unless told
    assert cfg.dns_service_ip == "10.60.0.10"
    assert (cfg.api_port, cfg.etcd_port) == (7443, 24000)
    assert cfg.api_url == "https://10.50.0.1:7443"
    assert cfg.image_store == Path("/store")
    assert (cfg.images, cfg.image_tag) == (("serve", "rollout"), "dev")
    assert Config.from_env({**env, "MLKUBE_CLUSTER_NODE_IP": "10.50.0.9"}).node_ip == "10.50.0.9"


def test_the_environment_is_read_when_asked_not_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLKUBE_CLUSTER_STATE", "/first")
    first = Config.from_env()
    monkeypatch.setenv("MLKUBE_CLUSTER_STATE", "/second")

    assert (first.state, Config.from_env().state) == (Path("/first"), Path("/second"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MLKUBE_CLUSTER_NODE", "fake"),
        ("MLKUBE_CLUSTER_API_PORT", "https"),
        ("MLKUBE_CLUSTER_POD_CIDR", "10.244.0.0/33"),
    ],
)
def test_a_value_that_cannot_be_used_is_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})


def test_the_image_tag_is_the_charts_app_version() -> None:
    assert Config.from_env({}).app_version == app_version(REPO / "charts" / "mlkube")


def test_env_json_is_what_the_deploy_driver_reads() -> None:
    cfg = Config.from_env({"MLKUBE_CLUSTER_STATE": "/s", "MLKUBE_CLUSTER_CACHE": "/c"})

    printed = json.loads(env_text(cfg, as_json=True))

    assert printed == {
        "kubeconfig": "/s/kubeconfig",
        "context": "mlkube-local",
        "logs": "/s/logs",
        "cache": f"/c/{K8S}",
        "state": "/s",
    }
    assert LocalCluster.from_json(env_text(cfg, as_json=True)) == LocalCluster(
        kubeconfig=Path("/s/kubeconfig"),
        context="mlkube-local",
        logs=Path("/s/logs"),
        cache=Path(f"/c/{K8S}"),
        state=Path("/s"),
    )
    assert env_text(cfg, "kubeconfig") == "/s/kubeconfig"
    assert "logs=/s/logs" in env_text(cfg).splitlines()


def test_cluster_py_env_json_starts_nothing_and_needs_no_root(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLKUBE_CLUSTER_STATE", "/elsewhere")
    monkeypatch.setattr("os.geteuid", lambda: 1000)

    assert main(["env", "--json"]) == 0

    assert json.loads(capsys.readouterr().out)["kubeconfig"] == "/elsewhere/kubeconfig"


def test_a_bad_variable_fails_the_command_with_its_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLKUBE_CLUSTER_NODE", "fake")

    assert main(["env", "--json"]) == 1

    assert "MLKUBE_CLUSTER_NODE='fake'" in capsys.readouterr().err
