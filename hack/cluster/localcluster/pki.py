"""Certificates (openssl; EC P-256 keys are fast) and the kubeconfigs that use them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from localcluster import templates
from localcluster.config import CLUSTER_DOMAIN, Config
from localcluster.host import Host


def _openssl(host: Host, *args: str) -> None:
    host.run(["openssl", *args])


def make_cert(
    host: Host,
    name: str,
    cn: str,
    org: str | None = None,
    sans: list[str] | None = None,
    server: bool = False,
) -> None:
    pki = host.cfg.pki
    key, crt = pki / f"{name}.key", pki / f"{name}.crt"
    if crt.exists():
        return
    _openssl(host, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    subj = f"/CN={cn}" + (f"/O={org}" if org else "")
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={'serverAuth,clientAuth' if server else 'clientAuth'}",
    ]
    if sans:
        ext.append("subjectAltName=" + ",".join(sans))
    with tempfile.NamedTemporaryFile("w", suffix=".ext", delete=False) as f:
        f.write("\n".join(ext) + "\n")
        extfile = f.name
    try:
        csr = pki / f"{name}.csr"
        _openssl(host, "req", "-new", "-key", str(key), "-subj", subj, "-out", str(csr))
        _openssl(
            host,
            *("x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt")),
            *("-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "365", "-sha256"),
            *("-extfile", extfile, "-out", str(crt)),
        )
        csr.unlink()
    finally:
        os.unlink(extfile)


def make_pki(host: Host) -> None:
    cfg, pki = host.cfg, host.cfg.pki
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    if not (pki / "ca.crt").exists():
        _openssl(
            host, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(pki / "ca.key")
        )
        _openssl(
            host,
            *("req", "-x509", "-new", "-key", str(pki / "ca.key")),
            *("-subj", "/CN=mlkube-cluster-ca", "-days", "365", "-sha256"),
            *("-addext", "basicConstraints=critical,CA:TRUE"),
            *("-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"),
            *("-out", str(pki / "ca.crt")),
        )
    if not (pki / "sa.key").exists():
        _openssl(
            host, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(pki / "sa.key")
        )
        _openssl(host, "pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    api_sans = [
        "DNS:localhost",
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        f"DNS:kubernetes.default.svc.{CLUSTER_DOMAIN}",
        "IP:127.0.0.1",
        f"IP:{cfg.node_ip}",
        f"IP:{cfg.api_service_ip}",
    ]
    make_cert(host, "apiserver", "kube-apiserver", sans=api_sans, server=True)
    make_cert(host, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters")
    make_cert(host, "admin", "mlkube-admin", "system:masters")
    make_cert(host, "controller-manager", "system:kube-controller-manager")
    make_cert(host, "scheduler", "system:kube-scheduler")
    make_cert(host, "kubelet", f"system:node:{cfg.node_name}", "system:nodes")
    make_cert(
        host,
        "kubelet-serving",
        cfg.node_name,
        sans=[f"DNS:{cfg.node_name}", f"IP:{cfg.node_ip}", "IP:127.0.0.1"],
        server=True,
    )
    make_cert(host, "kube-proxy", "system:kube-proxy")
    make_cert(host, "coredns", "mlkube:coredns")
    make_cert(host, "kwok", "mlkube:kwok", "system:masters")
    make_cert(host, "local-path", "mlkube:local-path")


def kubeconfig(cfg: Config, user: str) -> str:
    return templates.config(
        "kubeconfig.yaml",
        context=cfg.context,
        server=cfg.api_url,
        ca=cfg.pki / "ca.crt",
        user=user,
        cert=cfg.pki / f"{user}.crt",
        key=cfg.pki / f"{user}.key",
    )


def write_kubeconfig(cfg: Config, path: Path, user: str) -> None:
    path.write_text(kubeconfig(cfg, user))
    os.chmod(path, 0o600)


def component_kubeconfig(cfg: Config, user: str) -> Path:
    """``<state>/<user>.kubeconfig``, written (again) for a component about to start."""
    path = cfg.state / f"{user}.kubeconfig"
    write_kubeconfig(cfg, path, user)
    return path
