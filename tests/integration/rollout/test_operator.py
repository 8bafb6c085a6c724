"""The rollout operator against a Kubernetes API emulator (kmock, over HTTP) and a real MLflow.

Each test starts the operator (kopf + the official client, in a thread) with a 1 s poll unless
the test needs polling out of the way, moves the alias in MLflow, and looks at what the
emulator holds and which requests the operator sent.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import aiohttp
import pytest

from mlkube.core.processes import free_port
from rollout import cli, rbac
from rollout.webhook import sign
from tests.timeouts import EVENTUAL_S, POLL_S, PROCESS_START_S, PROCESS_STOP_S, QUIET_S

pytestmark = pytest.mark.integration

NAME = "iris-serving"
MODEL_ERROR = "UnpicklingError: invalid load key, '\\x00'."


def template_without_pin(body: dict[str, Any]) -> dict[str, Any]:
    """The pod template minus what the operator owns, to compare the rest."""
    template = copy.deepcopy(body["spec"]["template"])
    annotations = template["metadata"]["annotations"]
    annotations.pop("mlkube.io/model-version", None)
    annotations.pop("mlkube.io/previous-model-version", None)
    for container in template["spec"]["containers"]:
        container["env"] = [v for v in container.get("env", []) if v["name"] != "MODEL_VERSION"]
    return template


async def post_webhook(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/webhook", data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    delivery, stamp = str(uuid.uuid4()), str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": sign(secret, delivery, stamp, body.decode()),
    }


def reconciles(operator: Any, action: str) -> float:
    """Finished reconciles that ended in ``action``, whatever triggered them."""
    return sum(
        operator.metric("mlkube_rollout_reconciles_total", trigger=trigger, action=action)
        for trigger in ("poll", "event", "webhook")
    )


async def test_promotion_rolls_within_one_poll_and_keeps_the_rest(cluster, model, start_operator):
    await model.set_alias("1")
    cluster.add(cluster.deployment(NAME, model.name, version="1"))
    before = cluster.get(NAME)
    operator = await start_operator(ROLLOUT_POLL_SECONDS=1.0)
    await model.eventually_tagged("1", "succeeded")
    assert cluster.deployment_patches(NAME) == []  # already pinned to the alias: nothing to do

    await model.set_alias("2")
    took = await cluster.eventually(lambda: cluster.model_version(NAME) == "2", timeout=5)
    assert took < 1.0 + 1.5, f"patched {took:.2f}s after the alias moved (poll is 1 s)"

    after = cluster.get(NAME)
    template = after["spec"]["template"]
    assert template["metadata"]["annotations"]["mlkube.io/model-version"] == "2"
    assert template_without_pin(after) == template_without_pin(before)
    for key in ("replicas", "selector", "strategy", "progressDeadlineSeconds"):
        assert after["spec"][key] == before["spec"][key]
    assert after["metadata"]["labels"] == before["metadata"]["labels"]
    record = after["metadata"]["annotations"]
    assert record["mlkube.io/rollout-status"] == "progressing"
    assert (record["mlkube.io/rollout-target"], record["mlkube.io/stable-model-version"]) == (
        "2", "1")  # fmt: skip
    env = template["spec"]["containers"][0]["env"]
    assert [v["name"] for v in env] == [v["name"] for v in before["spec"]["template"]["spec"][
        "containers"][0]["env"]]  # same order: MODEL_VERSION replaced in place  # fmt: skip
    await cluster.eventually(lambda: cluster.event_reasons(NAME) == ["ModelRolloutStarted"])

    # The controller finishes the rollout: reported once, as an Event and a registry tag.
    await cluster.complete_rollout(NAME)
    await model.eventually_tagged("2", "succeeded")
    await cluster.eventually(
        lambda: (
            cluster.get(NAME)["metadata"]["annotations"]["mlkube.io/rollout-status"] == "succeeded"
        )
    )
    await cluster.eventually(lambda: "ModelRolloutSucceeded" in cluster.event_reasons(NAME))
    await operator.polls(2)  # more polls: reported once only
    succeeded = [e for e in cluster.events(NAME) if e["reason"] == "ModelRolloutSucceeded"]
    assert len(succeeded) == 1
    assert succeeded[0]["type"] == "Normal"
    assert succeeded[0]["involvedObject"]["uid"] == f"uid-{NAME}"
    assert operator.metric("mlkube_rollout_rollouts_total", result="started") == 1
    assert operator.metric("mlkube_rollout_rollouts_total", result="succeeded") == 1
    assert operator.metric("mlkube_rollout_alias_change_to_patch_seconds_count") == 1
    assert operator.metric("mlkube_rollout_alias_change_to_patch_seconds_sum") < 3.0

    async with aiohttp.ClientSession() as session, session.get(f"{operator.url}/metrics") as r:
        text = await r.text()
    assert r.status == 200
    assert 'mlkube_rollout_rollouts_total{result="succeeded"} 1.0' in text


async def test_no_write_while_the_alias_stays(cluster, model, start_operator):
    await model.set_alias("1")
    await asyncio.to_thread(
        model.client.set_model_version_tag, model.name, "1", "mlkube.rollout", "succeeded"
    )
    cluster.add(cluster.deployment(NAME, model.name, version="1"))
    cluster.add(cluster.deployment("other-app", model.name, version=None))
    other = cluster.get("other-app")
    del other["metadata"]["labels"]["mlkube.io/model-name"]  # not ours: never touched
    cluster.add(other)
    operator = await start_operator(ROLLOUT_POLL_SECONDS=0.3)

    await cluster.eventually(
        lambda: (
            operator.metric("mlkube_rollout_reconciles_total", trigger="poll", action="noop") >= 8
        ),
        what="several polls",
    )
    assert cluster.operator_writes() == []

    # A deleted Deployment is forgotten: no more reads or reconciles of it.
    await cluster.delete(NAME)
    await cluster.eventually(lambda: operator.operator and not operator.operator.deployments)
    await operator.polls(0)  # a cycle that began before the delete may still reconcile it
    polls = operator.metric("mlkube_rollout_reconciles_total", trigger="poll", action="noop")
    await operator.polls(3)
    assert (
        operator.metric("mlkube_rollout_reconciles_total", trigger="poll", action="noop") == polls
    )
    assert cluster.operator_writes() == []


async def test_webhook_rolls_within_two_seconds(
    cluster, model, start_operator, tracking_uri, monkeypatch, capsys
):
    await model.set_alias("1")
    cluster.add(cluster.deployment(NAME, model.name, version="1"))
    # Poll every 60 s: only the webhook can explain a patch within 2 s.
    operator = await start_operator(ROLLOUT_POLL_SECONDS=60.0)
    await model.eventually_tagged("1", "succeeded")  # the Deployment as first seen: reconciled
    assert cluster.deployment_patches(NAME) == []

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("ROLLOUT_WEBHOOK_SECRET", "test-secret")
    name = f"rollout-{model.name}"
    args = ["register-webhook", "--url", f"{operator.url}/webhook", "--name", name, "--test"]
    assert await asyncio.to_thread(cli.main, args) == 0
    out = capsys.readouterr().out
    assert "created webhook" in out
    assert "test delivery accepted (HTTP 202)" in out
    # Registering again updates the same webhook instead of adding a second one.
    assert await asyncio.to_thread(cli.main, args[:-1]) == 0
    assert "updated webhook" in capsys.readouterr().out
    try:
        await asyncio.sleep(1.2)  # MLflow caches webhook lists for MLFLOW_WEBHOOK_CACHE_TTL=1 s
        await model.set_alias("2")
        took = await cluster.eventually(lambda: cluster.model_version(NAME) == "2", timeout=5)
        assert took <= 2.0, f"webhook-triggered patch took {took:.2f}s"
        assert operator.metric("mlkube_rollout_webhooks_total", result="accepted") >= 1
        await cluster.eventually(
            lambda: (
                operator.metric("mlkube_rollout_reconciles_total", trigger="webhook", action="roll")
                == 1
            )
        )
    finally:
        hooks = [w for w in model.client.list_webhooks() if w.name == name]
        for hook in hooks:
            model.client.delete_webhook(hook.webhook_id)
    assert len(hooks) == 1


async def test_bad_signature_is_401_and_patches_nothing(cluster, model, start_operator):
    await model.set_alias("1")
    cluster.add(cluster.deployment(NAME, model.name, version="1"))
    operator = await start_operator(ROLLOUT_POLL_SECONDS=60.0)
    # The Deployment as first seen is reconciled before the alias moves (else that rolls it).
    await model.eventually_tagged("1", "succeeded")
    await model.set_alias("2")  # the registry moved, but nobody authentic said so
    payload = {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "2026-01-01T00:00:00+00:00",
        "data": {"name": model.name, "alias": "production", "version": "2"},
    }
    body = json.dumps(payload).encode()

    forged = signed_headers("not-the-secret", body)
    assert (await post_webhook(operator.url, body, forged))[0] == 401
    unsigned = {k: v for k, v in forged.items() if k != "X-MLflow-Signature"}
    status, answer = await post_webhook(operator.url, body, unsigned)
    assert status == 401
    assert "X-MLflow-Signature" in answer["error"]
    tampered = signed_headers("test-secret", body)
    assert (await post_webhook(operator.url, body.replace(b'"2"', b'"3"'), tampered))[0] == 401
    await asyncio.sleep(QUIET_S)  # no poll for 60 s: a window in which nothing may happen
    assert cluster.deployment_patches(NAME) == []
    assert cluster.model_version(NAME) == "1"
    assert operator.metric("mlkube_rollout_webhooks_total", result="rejected") == 3

    # The same delivery, signed with the right secret, does roll (so the test could fail).
    status, answer = await post_webhook(operator.url, body, signed_headers("test-secret", body))
    assert (status, answer["deployments"]) == (202, 1)
    await cluster.eventually(lambda: cluster.model_version(NAME) == "2")
    await cluster.eventually(
        lambda: (
            operator.metric("mlkube_rollout_reconciles_total", trigger="webhook", action="roll")
            == 1
        ),
        what="the roll counted as the webhook's",
    )


async def test_progress_deadline_reverts_once_and_waits_for_the_alias(
    cluster, model, start_operator
):
    await model.set_alias("1")
    cluster.add(cluster.deployment(NAME, model.name, version="1"))
    operator = await start_operator(ROLLOUT_POLL_SECONDS=0.5)
    await model.set_alias("2")
    await cluster.eventually(lambda: cluster.model_version(NAME) == "2")

    # The new pod runs but cannot load version 2; the old ones serve version 1.
    cluster.endpoints.answers["2"] = (503, {"status": "loading", "last_error": MODEL_ERROR})
    cluster.set_pods(NAME, cluster.pod(NAME, "1"), cluster.pod(NAME, "1"),
                     cluster.pod(NAME, "2", ready=False))  # fmt: skip
    await cluster.miss_deadline(NAME)
    await cluster.eventually(lambda: cluster.model_version(NAME) == "1", what="reverted to v1")
    body = cluster.get(NAME)
    assert body["spec"]["template"]["metadata"]["annotations"]["mlkube.io/model-version"] == "1"
    assert body["metadata"]["annotations"]["mlkube.io/rollout-status"] == "failed"
    assert body["metadata"]["annotations"]["mlkube.io/failed-model-version"] == "2"
    await model.eventually_tagged("2", "failed")
    await cluster.eventually(lambda: "ModelRolloutFailed" in cluster.event_reasons(NAME))
    warnings = [e for e in cluster.events(NAME) if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["ModelRolloutFailed"]
    assert MODEL_ERROR in warnings[0]["message"]
    assert MODEL_ERROR in body["metadata"]["annotations"]["mlkube.io/rollout-reason"]

    # No retry loop: the alias still says 2, the operator leaves the Deployment alone.
    patches = len(cluster.deployment_patches(NAME))
    assert patches == 2  # the rollout and the revert
    polls = operator.metric("mlkube_rollout_reconciles_total", trigger="poll", action="noop")
    await cluster.eventually(
        lambda: (
            operator.metric("mlkube_rollout_reconciles_total", trigger="poll", action="noop")
            >= polls + 4
        )
    )
    assert len(cluster.deployment_patches(NAME)) == patches
    assert operator.metric("mlkube_rollout_rollouts_total", result="failed") == 1

    # The alias moves on: the operator rolls again and forgets the failure.
    await model.set_alias("3")
    await cluster.eventually(lambda: cluster.model_version(NAME) == "3")
    annotations = cluster.get(NAME)["metadata"]["annotations"]
    assert "mlkube.io/failed-model-version" not in annotations
    assert annotations["mlkube.io/rollout-status"] == "progressing"

    # The requests the operator made are what rollout.rbac grants the chart's Role (a canary's
    # create and delete: test_a_failing_canary_...).
    assert used_permissions(cluster.operator_requests()) == rbac.permissions() - {
        ("apps", "deployments", "create"),
        ("apps", "deployments", "delete"),
    }


async def test_an_unschedulable_pod_is_not_blamed_on_the_model(cluster, model, start_operator):
    """ProgressDeadlineExceeded because the surge pod finds no room: back to version 1 (its
    ReplicaSet is still there), a Warning that says why, no verdict on version 2, a retry later."""
    await model.set_alias("1")
    cluster.add(cluster.deployment(NAME, model.name, version="1"))
    before = cluster.get(NAME)["spec"]["template"]
    await start_operator(ROLLOUT_POLL_SECONDS=0.5)
    await model.set_alias("2")
    await cluster.eventually(lambda: cluster.model_version(NAME) == "2")
    reason = "0/3 nodes are available: 3 Insufficient cpu."
    cluster.set_pods(NAME, cluster.pod(NAME, "1"), cluster.pod(NAME, "1"),
                     cluster.pod(NAME, "2", unschedulable=reason))  # fmt: skip
    await cluster.miss_deadline(NAME)
    await cluster.eventually(lambda: "ModelRolloutStalled" in cluster.event_reasons(NAME))
    body = cluster.get(NAME)
    assert body["spec"]["template"] == before  # the v1 ReplicaSet's template, byte for byte
    record = body["metadata"]["annotations"]
    assert record["mlkube.io/rollout-status"] == "waiting"
    assert record["mlkube.io/rollout-attempt"] == "1"
    assert reason in record["mlkube.io/rollout-reason"]
    assert "mlkube.io/failed-model-version" not in record
    [stalled] = [e for e in cluster.events(NAME) if e["reason"] == "ModelRolloutStalled"]
    assert stalled["type"] == "Warning"
    assert "capacity" in stalled["message"]
    assert await asyncio.to_thread(model.tag, "2") is None  # no verdict on the model


async def test_a_held_deployment_is_left_alone(cluster, model, start_operator):
    await model.set_alias("1")
    held = cluster.deployment(NAME, model.name, version="1")
    held["metadata"]["annotations"]["mlkube.io/rollout-hold"] = "incident 42: pinned by hand"
    cluster.add(held)
    operator = await start_operator(ROLLOUT_POLL_SECONDS=0.3)
    await model.set_alias("2")
    await operator.polls(4)
    assert cluster.operator_writes() == []
    assert cluster.model_version(NAME) == "1"
    # The hold is lifted: the operator rolls.
    await cluster.patch(NAME, {"metadata": {"annotations": {"mlkube.io/rollout-hold": None}}})
    await cluster.eventually(lambda: cluster.model_version(NAME) == "2")


async def test_a_stale_deadline_condition_does_not_revert(cluster, model, start_operator):
    """The alias flips back to a version whose ReplicaSet timed out an hour ago: the leftover
    ProgressDeadlineExceeded is older than the operator's patch and judges nothing."""
    await model.set_alias("1")
    cluster.add(cluster.deployment(NAME, model.name, version="1"))
    operator = await start_operator(ROLLOUT_POLL_SECONDS=0.3)
    await model.set_alias("2")
    await cluster.eventually(lambda: cluster.model_version(NAME) == "2")
    old = "2020-01-01T00:00:00Z"
    await cluster.patch(NAME, {"status": {
        "observedGeneration": cluster.get(NAME)["metadata"]["generation"],
        "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2,
        "conditions": [{"type": "Progressing", "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "lastUpdateTime": old, "lastTransitionTime": old}],
    }})  # fmt: skip
    await operator.polls(4)
    assert cluster.model_version(NAME) == "2"
    assert cluster.get(NAME)["metadata"]["annotations"]["mlkube.io/rollout-status"] == (
        "progressing")  # fmt: skip


def used_permissions(requests: list[Any]) -> set[tuple[str, str, str]]:
    used = set()
    for request in requests:
        if request.resource is None or request.resource.plural is None:
            continue  # discovery (/api, /apis/...): non-resource URLs, allowed to everyone
        method = request.method.value
        if method == "GET" and request.params.get("watch") == "true":
            verb = "watch"
        elif method == "GET":
            verb = "get" if request.name else "list"
        else:
            verb = {"PATCH": "patch", "POST": "create", "PUT": "update", "DELETE": "delete"}[method]
        used.add((request.resource.group, request.resource.plural, verb))
    return used


async def test_mlflow_down_means_no_patch_then_recovery(
    cluster, model, start_operator, tracking_uri
):
    host, port = tracking_uri.removeprefix("http://").rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    try:
        await model.set_alias("1")
        cluster.add(cluster.deployment(NAME, model.name, version="1"))
        operator = await start_operator(
            ROLLOUT_POLL_SECONDS=0.5, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{proxy.port}"
        )
        await model.eventually_tagged("1", "succeeded")

        await proxy.stop()  # MLflow unreachable (connection refused)
        await model.set_alias("2")
        await cluster.eventually(
            lambda: operator.metric("mlkube_rollout_registry_errors_total") >= 2
        )
        await cluster.eventually(lambda: "ModelRegistryUnavailable" in cluster.event_reasons(NAME))
        await operator.polls(2)
        assert cluster.model_version(NAME) == "1"
        # One write, metadata only: the record says the Deployment waits on the registry.
        [note] = cluster.deployment_patches(NAME)
        assert all(op["path"].startswith("/metadata/") for op in note.data)
        waiting = cluster.get(NAME)["metadata"]["annotations"]["mlkube.io/registry-unavailable"]
        assert "unreachable" in waiting

        await proxy.start()  # back on the same port
        took = await cluster.eventually(lambda: cluster.model_version(NAME) == "2")
        assert took < 2.0  # the registry's backoff is capped at one poll (0.5 s here)
        assert len(cluster.deployment_patches(NAME)) == 2
        assert "mlkube.io/registry-unavailable" not in cluster.get(NAME)["metadata"]["annotations"]
        await cluster.eventually(lambda: "ModelRegistryAvailable" in cluster.event_reasons(NAME))
    finally:
        await proxy.stop()


async def test_restarted_operator_carries_on(cluster, model, start_operator):
    await model.set_alias("1")
    cluster.add(cluster.deployment(NAME, model.name, version="1"))
    first = await start_operator(ROLLOUT_POLL_SECONDS=0.5)
    await model.set_alias("2")
    await cluster.eventually(lambda: cluster.model_version(NAME) == "2")
    await first.stop()  # mid-rollout: the new pods are not available yet

    await cluster.complete_rollout(NAME)  # finishes while no operator runs
    second = await start_operator(ROLLOUT_POLL_SECONDS=0.5)
    await model.eventually_tagged("2", "succeeded")
    await cluster.eventually(
        lambda: (
            cluster.get(NAME)["metadata"]["annotations"]["mlkube.io/rollout-status"] == "succeeded"
        )
    )
    # The Event comes after the patch and the tag.
    await cluster.eventually(lambda: "ModelRolloutSucceeded" in cluster.event_reasons(NAME))
    await second.polls(2)  # a few more polls: nothing left to do
    body = cluster.get(NAME)
    assert cluster.model_version(NAME) == "2"
    assert body["metadata"]["annotations"]["mlkube.io/stable-model-version"] == "2"
    reasons = cluster.event_reasons(NAME)
    assert sorted(reasons) == ["ModelRolloutStarted", "ModelRolloutSucceeded"]
    template_patches = [
        r for r in cluster.deployment_patches(NAME) if "/spec/template" in json.dumps(r.data)
    ]
    assert len(template_patches) == 1  # the restart did not roll again


async def test_conflict_is_re_read_and_retried(cluster, model, start_operator):
    await model.set_alias("1")
    cluster.add(cluster.deployment(NAME, model.name, version="1"))
    operator = await start_operator(ROLLOUT_POLL_SECONDS=0.5)
    cluster.api.inject_conflicts = 1
    await model.set_alias("2")
    await cluster.eventually(lambda: cluster.model_version(NAME) == "2")
    await cluster.eventually(lambda: cluster.event_reasons(NAME) == ["ModelRolloutStarted"])
    assert cluster.api.inject_conflicts == 0
    assert len(cluster.deployment_patches(NAME)) == 2  # 409, then the retry
    # Counted before the Event was created, so no wait needed.
    assert operator.metric("mlkube_rollout_rollouts_total", result="started") == 1


async def test_a_write_between_read_and_patch_is_a_conflict_not_an_error(
    cluster, model, start_operator, caplog
):
    """Someone inserts an env var in the serving container between the operator's read and its
    patch: the patch's `test` op guarding MODEL_VERSION's position fails, which the API server
    answers with a bare 422. The operator sees the object moved on, re-reads and pins the new
    version at its new position, keeping the other writer's change."""
    await model.set_alias("1")
    cluster.add(cluster.deployment(NAME, model.name, version="1"))
    operator = await start_operator(ROLLOUT_POLL_SECONDS=0.5)

    def insert_env(body: dict[str, Any]) -> None:
        env = body["spec"]["template"]["spec"]["containers"][0]["env"]
        env.insert(0, {"name": "FEATURE_FLAG", "value": "on"})

    cluster.api.concurrent_edits.append(insert_env)
    caplog.set_level(logging.INFO, logger="rollout.reconciler")
    await model.set_alias("2")
    await cluster.eventually(lambda: cluster.model_version(NAME) == "2")
    assert "changed under us" in caplog.text  # the bare 422, read as a conflict
    assert cluster.api.concurrent_edits == []
    env = cluster.get(NAME)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[0] == {"name": "FEATURE_FLAG", "value": "on"}
    assert [v["name"] for v in env].count("MODEL_VERSION") == 1
    assert len(cluster.deployment_patches(NAME)) == 2  # the 422, then the retry
    # Counted after the patch: wait for the count, then for the reconcile's end (counted last),
    # so that an error in it would have been counted by now.
    await cluster.eventually(
        lambda: operator.metric("mlkube_rollout_rollouts_total", result="started") == 1
    )
    await cluster.eventually(lambda: reconciles(operator, "roll") >= 1)
    for trigger in ("poll", "event", "webhook"):
        errors = operator.metric("mlkube_rollout_reconciles_total", trigger=trigger, action="error")
        assert errors == 0


async def test_cluster_wide_pins_every_labelled_deployment(cluster, model, start_operator):
    """Several namespaces and aliases; unpinned Deployments get pinned to their alias."""
    await model.set_alias("1")
    await model.set_alias("3", alias="staging")
    cluster.add(cluster.deployment(NAME, model.name, version=None, status=None))
    staging = cluster.deployment(NAME, model.name, version=None, alias="staging", status=None)
    staging["metadata"]["namespace"] = "staging"
    cluster.add(staging)
    await start_operator(ROLLOUT_POLL_SECONDS=0.5, ROLLOUT_NAMESPACE="", ROLLOUT_CLUSTER_WIDE=True)
    await cluster.eventually(lambda: cluster.model_version(NAME) == "1")
    await cluster.eventually(lambda: cluster.model_version(NAME, "staging") == "3")
    annotations = cluster.get(NAME, "staging")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["mlkube.io/model-version"] == "3"
    assert "mlkube.io/previous-model-version" not in annotations
    assert annotations["checksum/config"] == "abc123"


class TcpProxy:
    """A TCP forwarder that can be switched off (connection refused) and on again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._pipes):
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        for task in (
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ):
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)


@pytest.mark.slow
async def test_cli_runs_outside_the_cluster_with_a_kubeconfig(
    cluster, model, tracking_uri, tmp_path
):
    """``python -m rollout --kubeconfig``: pins the Deployment, says so, answers liveness and
    /metrics, and stops cleanly on SIGTERM (as in a pod)."""
    await model.set_alias("2")
    cluster.add(cluster.deployment(NAME, model.name, version=None, status=None))
    http_port, liveness_port = free_port(), free_port()
    log = tmp_path / "operator.log"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "ROLLOUT_POLL_SECONDS": "1",
        "ROLLOUT_HTTP_PORT": str(http_port),
        "ROLLOUT_WEBHOOK_SECRET": "s3cret",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rollout", "--kubeconfig", str(cluster.kubeconfig),
             "--liveness", f"http://127.0.0.1:{liveness_port}/healthz"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        await cluster.eventually(
            lambda: cluster.model_version(NAME) == "2", timeout=PROCESS_START_S
        )
        await cluster.eventually(lambda: "Pinning model" in log.read_text())
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{liveness_port}/healthz") as response:
                assert response.status == 200
            started = 'mlkube_rollout_rollouts_total{result="started"} 1.0'
            metrics = ""
            deadline = time.monotonic() + EVENTUAL_S
            while started not in metrics:  # counted after the patch and the log line
                assert time.monotonic() < deadline, metrics
                await asyncio.sleep(POLL_S)
                async with session.get(f"http://127.0.0.1:{http_port}/metrics") as response:
                    metrics = await response.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, PROCESS_STOP_S)
    text = log.read_text()
    assert code == 0, text
    assert f"deployment serving/{NAME}: Pinning model {model.name} to version 2" in text
    assert "Traceback" not in text


@pytest.mark.parametrize("cluster_wide", [False, True])
async def test_the_watch_asks_for_labelled_deployments_only(
    cluster, model, start_operator, cluster_wide
):
    await model.set_alias("1")
    cluster.add(cluster.deployment(NAME, model.name, version="1"))
    scope = {"ROLLOUT_NAMESPACE": "", "ROLLOUT_CLUSTER_WIDE": True} if cluster_wide else {}
    operator = await start_operator(ROLLOUT_POLL_SECONDS=0.3, **scope)
    await operator.polls(1)
    reads = [
        r
        for r in cluster.operator_requests()
        if r.resource is not None and r.resource.plural == "deployments" and r.name is None
    ]
    watches = [r for r in reads if r.params.get("watch") == "true"]
    assert watches, "no watch request"
    assert len(reads) > len(watches)  # the poll lists afresh
    for request in reads:
        assert request.params.get("labelSelector") == "mlkube.io/model-name", request
        if cluster_wide:
            assert request.namespace is None


async def test_the_poll_is_a_resync_not_the_watch_cache(cluster, model, start_operator):
    """A change the watch never delivered (a lost event) is seen by the next poll."""
    await model.set_alias("2")
    cluster.add(cluster.deployment(NAME, model.name, version="2"))
    operator = await start_operator(ROLLOUT_POLL_SECONDS=0.3)
    await model.eventually_tagged("2", "succeeded")
    # Someone pins version 1 and the watch loses the event: only the store changes.
    silently = cluster.deployment(NAME, model.name, version="1")
    silently["metadata"]["resourceVersion"] = "150"
    cluster.add(silently)
    assert cluster.model_version(NAME) == "1"
    await cluster.eventually(lambda: cluster.model_version(NAME) == "2", what="re-pinned to 2")
    await cluster.eventually(
        lambda: (
            operator.metric("mlkube_rollout_reconciles_total", trigger="poll", action="roll") == 1
        ),
        what="the roll counted as the poll's",
    )


async def test_readiness_fails_while_the_api_server_is_unreachable(
    cluster, model, start_operator, tmp_path
):
    proxy = TcpProxy(*cluster.url.removeprefix("http://").rsplit(":", 1))
    proxy.target = (proxy.target[0], int(proxy.target[1]))
    await proxy.start()
    kubeconfig = json.loads(cluster.kubeconfig.read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{proxy.port}"
    cluster.kubeconfig.write_text(json.dumps(kubeconfig))
    try:
        await model.set_alias("1")
        cluster.add(cluster.deployment(NAME, model.name, version="1"))
        operator = await start_operator(ROLLOUT_POLL_SECONDS=0.3)
        operator.operator.ready_floor_s = 1.0

        async def ready() -> int:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{operator.url}/healthz/ready") as response,
            ):
                return response.status

        status = 0
        deadline = time.monotonic() + EVENTUAL_S
        while status != 200:
            assert time.monotonic() < deadline
            status = await ready()
            await asyncio.sleep(POLL_S)
        await proxy.stop()  # the API server is cut off
        while status != 503:
            assert time.monotonic() < deadline + EVENTUAL_S
            status = await ready()
            await asyncio.sleep(POLL_S)
        await proxy.start()  # back on the same port
        while status != 200:
            assert time.monotonic() < deadline + 2 * EVENTUAL_S
            status = await ready()
            await asyncio.sleep(POLL_S)
    finally:
        await proxy.stop()


def served(ok: int, errors: int, classes: dict[str, int]) -> str:
    """The /metrics of a model server that answered these requests (service.metrics)."""
    import numpy as np
    from prometheus_client import generate_latest

    from service.metrics import Metrics

    metrics = Metrics()
    for status, count in ((200, ok), (500, errors)):
        for _ in range(count):
            metrics.observe_request("/invocations", "POST", status, 0.004)
    for label, count in classes.items():
        metrics.count_predictions("x", np.array([label] * count))
    return generate_latest(metrics.registry).decode()


async def test_a_failing_canary_is_removed_tagged_and_moves_the_alias_back(
    cluster, model, start_operator
):
    await model.set_alias("1")
    body = cluster.deployment(NAME, model.name, version="1")
    body["metadata"]["annotations"].update({
        "mlkube.io/rollout-strategy": "canary",
        "mlkube.io/canary-seconds": "2",
        "mlkube.io/canary-move-alias-back": "true",
    })  # fmt: skip
    cluster.add(body)
    cluster.set_pods(NAME, cluster.pod(NAME, "1"), cluster.pod(NAME, "1"))
    cluster.endpoints.metrics["1"] = served(990, 10, {"setosa": 50, "versicolor": 50})
    await start_operator(ROLLOUT_POLL_SECONDS=0.3)
    await model.eventually_tagged("1", "succeeded")

    await model.set_alias("2")
    canary = f"{NAME}-canary"
    await cluster.eventually(lambda: cluster.exists(canary), what="the canary Deployment")
    made = cluster.get(canary)
    assert made["spec"]["selector"] == body["spec"]["selector"]
    assert "mlkube.io/model-name" not in made["metadata"]["labels"]
    assert cluster.model_version(canary) == "2"
    assert cluster.model_version(NAME) == "1"  # the main Deployment waits for the verdict
    assert cluster.get(NAME)["metadata"]["annotations"]["mlkube.io/rollout-status"] == "canary"
    # Its pod answers, with a quarter of its requests failing.
    cluster.endpoints.metrics["2"] = served(150, 50, {"setosa": 100, "versicolor": 100})
    cluster.set_pods(NAME, cluster.pod(NAME, "1"), cluster.pod(NAME, "1"),
                     cluster.pod(NAME, "2", labels={"mlkube.io/canary-of": NAME}))  # fmt: skip

    await cluster.eventually(lambda: not cluster.exists(canary), what="the canary removed")
    await model.eventually_tagged("2", "failed")
    reason = await asyncio.to_thread(model.client.get_model_version, model.name, "2")
    assert "error rate 25.00%" in reason.tags[f"mlkube.rollout.reason/serving/{NAME}"]
    assert cluster.model_version(NAME) == "1"
    await cluster.eventually(lambda: "ModelCanaryFailed" in cluster.event_reasons(NAME))
    [failed] = [e for e in cluster.events(NAME) if e["reason"] == "ModelCanaryFailed"]
    assert failed["type"] == "Warning"
    assert "error rate 25.00%" in failed["message"]
    # The alias is back on the version the pods serve: the record settles there.
    await cluster.eventually(
        lambda: (
            cluster.get(NAME)["metadata"]["annotations"]["mlkube.io/rollout-status"] == "succeeded"
        ),
        what="settled back on version 1",
    )
    assert "mlkube.io/failed-model-version" not in cluster.get(NAME)["metadata"]["annotations"]
    alias = await asyncio.to_thread(
        model.client.get_model_version_by_alias, model.name, "production"
    )
    assert alias.version == "1"
    assert "moved back here from version 2" in alias.tags[
        f"mlkube.rollout.alias-restored/serving/{NAME}"]  # fmt: skip
    assert used_permissions(cluster.operator_requests()) == rbac.permissions()


async def test_a_denied_patch_is_a_warning_event_and_backs_off(cluster, model, start_operator):
    await model.set_alias("1")
    cluster.add(cluster.deployment(NAME, model.name, version="1"))
    operator = await start_operator(ROLLOUT_POLL_SECONDS=0.3)
    await model.eventually_tagged("1", "succeeded")
    denial = 'admission webhook "freeze.example.com" denied the request: change freeze'
    cluster.api.deny_patches = denial
    await model.set_alias("2")
    await cluster.eventually(lambda: "ModelRolloutPatchDenied" in cluster.event_reasons(NAME))
    [event] = [e for e in cluster.events(NAME) if e["reason"] == "ModelRolloutPatchDenied"]
    assert event["type"] == "Warning"
    assert "change freeze" in event["message"]
    # Polls go on; the same patch is not sent again before the backoff (30 s) ends.
    await operator.polls(5)
    assert len(cluster.deployment_patches(NAME)) == 1
    assert operator.metric("mlkube_rollout_patch_refusals_total", action="roll") == 1
    assert cluster.model_version(NAME) == "1"
    # The Deployment changes (someone lifts the freeze and edits it): tried again at once.
    cluster.api.deny_patches = None
    await cluster.patch(NAME, {"metadata": {"annotations": {"freeze": "lifted"}}})
    await cluster.eventually(lambda: cluster.model_version(NAME) == "2")
