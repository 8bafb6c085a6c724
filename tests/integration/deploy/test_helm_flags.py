"""What `make deploy` really asks of the helm binary, through pyhelm3: a stand-in `helm` records
every command line. The user's own helm may be Helm 3 (3.8+) or Helm 4: no flag may be one only
Helm 4 knows, and the install must neither wait nor roll back on failure (serving stays unready
until the post-install hook's training has made a model)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from deploy.helm import PyHelm3

# Answers like helm: its version, the chart's metadata, no release yet, then the new revision.
FAKE_HELM = """\
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_HELM_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[0] == "version":
    print(os.environ["FAKE_HELM_VERSION"], end="")
elif args[:2] == ["show", "chart"]:
    print("apiVersion: v2\\nname: mlkube\\nversion: 0.2.0\\nappVersion: 0.1.0")
elif args[0] == "status":
    sys.stderr.write("Error: release: not found\\n")
    sys.exit(1)
elif args[0] == "upgrade":
    sys.stdin.read()
    print(json.dumps({
        "name": args[1], "namespace": args[args.index("--namespace") + 1], "version": 1,
        "info": {"status": "deployed", "last_deployed": "2026-01-01T00:00:00Z"},
        "manifest": "",
    }))
else:
    sys.stderr.write("unexpected: " + " ".join(args) + "\\n")
    sys.exit(2)
"""

# Flags Helm 3.8 lacks (4.x only), and the ones that would make the install wait for pods.
HELM4_ONLY = {"--rollback-on-failure", "--server-side", "--force-replace", "--force-conflicts"}
WAITING = {"--wait", "--wait-for-jobs", "--atomic", "--rollback-on-failure"}


@pytest.fixture
def fake_helm(tmp_path: Path) -> Path:
    script = tmp_path / "helm"
    script.write_text(f"#!{sys.executable}\n{FAKE_HELM}")
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("version", ["v3.8.0", "v4.1.4"])
def test_install_passes_only_flags_helm_3_8_knows_and_does_not_wait(
    fake_helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_HELM_LOG", str(log))
    monkeypatch.setenv("FAKE_HELM_VERSION", version)
    chart = tmp_path / "chart"
    chart.mkdir()

    revision = PyHelm3(str(fake_helm)).upgrade_install(
        "mlkube",
        chart,
        {"serving": {"replicas": 2}},
        namespace="mlkube",
        context="kind-mlkube",
        wait=False,
        atomic=False,
        timeout="600s",
    )

    assert (revision.revision, revision.status) == (1, "deployed")
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    [upgrade] = [c for c in calls if c[0] == "upgrade"]
    assert upgrade[:2] == ["upgrade", "mlkube"]
    flags = {word.split("=", 1)[0] for c in calls for word in c if word.startswith("--")}
    assert not flags & HELM4_ONLY, f"Helm-4-only flags: {flags & HELM4_ONLY}"
    assert not set(upgrade) & WAITING, upgrade
    # What Helm 3.8 has: install-or-upgrade into a namespace it creates, values from stdin.
    assert {"--install", "--create-namespace", "--values", "--timeout", "--output"} <= flags
    assert upgrade[upgrade.index("--kube-context") + 1] == "kind-mlkube"
