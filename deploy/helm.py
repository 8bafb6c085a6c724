"""Helm, behind a small facade: the deploy steps call :class:`Helm`; :class:`PyHelm3` runs it
through pyhelm3 (the helm binary underneath); unit tests use a fake that records the calls."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
Values = dict[str, Any]


class HelmError(RuntimeError):
    """A Helm operation failed; the message carries Helm's own error text."""


@dataclass(frozen=True)
class Revision:
    release: str
    namespace: str
    revision: int
    status: str


class Helm(Protocol):
    def upgrade_install(
        self,
        release: str,
        chart: Path,
        values: Values,
        *,
        namespace: str,
        context: str,
        wait: bool,
        atomic: bool,
        timeout: str,
    ) -> Revision: ...

    def uninstall(self, release: str, *, namespace: str, context: str) -> None: ...

    def status(self, release: str, *, namespace: str, context: str) -> Revision | None:
        """The current revision, or None when the release is not installed."""
        ...

    def template(
        self, release: str, chart: Path, values: Values, *, namespace: str
    ) -> list[dict[str, Any]]: ...


def merge_values(*layers: Mapping[str, Any]) -> Values:
    """Merge values files the way ``helm -f a -f b`` does: maps merge key by key, anything else
    (lists included) is replaced by the later layer, and ``null`` deletes a key.

    pyhelm3's own merge concatenates lists, which is not what Helm does with ``-f``; we merge
    first and hand it one dict."""
    merged: Values = {}
    for layer in layers:
        merged = _merge(merged, layer)
    return merged


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> Values:
    out: Values = copy.deepcopy(dict(base))
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class PyHelm3:
    """:class:`Helm` over ``pyhelm3.Client`` (one client per kube-context)."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self._clients: dict[str | None, Any] = {}

    def _client(self, context: str | None) -> Any:
        from pyhelm3 import Client

        if context not in self._clients:
            self._clients[context] = Client(executable=self.executable, kubecontext=context)
        return self._clients[context]

    def _errors(self) -> tuple[type[BaseException], ...]:
        from pyhelm3 import errors

        return (errors.Error,)

    def upgrade_install(
        self,
        release: str,
        chart: Path,
        values: Values,
        *,
        namespace: str,
        context: str,
        wait: bool,
        atomic: bool,
        timeout: str,
    ) -> Revision:
        client = self._client(context)

        async def go() -> Any:
            loaded = await client.get_chart(chart.resolve())
            # A deploy interrupted mid-way leaves the release pending-install/-upgrade, which
            # blocks every later upgrade; pyhelm3 uninstalls or rolls back such a release first.
            await client.get_proceedable_revision(release, namespace=namespace, timeout=timeout)
            return await client.install_or_upgrade_release(
                release,
                loaded,
                values,
                namespace=namespace,
                create_namespace=True,
                wait=wait,
                atomic=atomic,
                timeout=timeout,
            )

        try:
            rev = _run(go())
        except self._errors() as exc:
            raise HelmError(f"helm upgrade --install {release} failed: {exc}") from exc
        return Revision(release, namespace, int(rev.revision), str(rev.status.value))

    def uninstall(self, release: str, *, namespace: str, context: str) -> None:
        client = self._client(context)
        try:
            _run(client.uninstall_release(release, namespace=namespace, wait=True))
        except self._errors() as exc:
            raise HelmError(f"helm uninstall {release} failed: {exc}") from exc

    def status(self, release: str, *, namespace: str, context: str) -> Revision | None:
        from pyhelm3 import errors

        client = self._client(context)
        try:
            rev = _run(client.get_current_revision(release, namespace=namespace))
        except errors.ReleaseNotFoundError:
            return None
        except self._errors() as exc:
            raise HelmError(f"helm status {release} failed: {exc}") from exc
        return Revision(release, namespace, int(rev.revision), str(rev.status.value))

    def template(
        self, release: str, chart: Path, values: Values, *, namespace: str
    ) -> list[dict[str, Any]]:
        client = self._client(None)

        async def go() -> list[dict[str, Any]]:
            loaded = await client.get_chart(chart.resolve())
            docs = await client.template_resources(loaded, release, values, namespace=namespace)
            return [doc for doc in docs if doc]

        try:
            return _run(go())
        except self._errors() as exc:
            raise HelmError(f"helm template {release} failed: {exc}") from exc
