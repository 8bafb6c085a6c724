"""kube-apiserver on NODE_IP: RBAC and the Node authorizer, NodeRestriction, ServiceAccount
tokens signed with the EC key of the PKI."""

from __future__ import annotations

from localcluster.components.base import Argv, Component, Readiness
from localcluster.config import CLUSTER_DOMAIN, Config
from localcluster.host import Host
from localcluster.probes import ok_200, ssl_ctx


def command(cfg: Config) -> Argv:
    pki = cfg.pki
    return [
        cfg.bin / "kube-apiserver",
        f"--etcd-servers=http://127.0.0.1:{cfg.etcd_port}",
        f"--bind-address={cfg.node_ip}",
        f"--advertise-address={cfg.node_ip}",
        f"--secure-port={cfg.api_port}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        # /healthz /readyz /livez only (RBAC: system:public-info-viewer)
        "--anonymous-auth=true",
        f"--service-cluster-ip-range={cfg.service_cidr}",
        f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        "--allow-privileged=true",
        "--profiling=false",
        "--enable-priority-and-fairness=false",
        "--event-ttl=30m",
        "--v=1",
    ]


def ready(host: Host) -> list[Readiness]:
    url = host.cfg.api_url
    return [Readiness(ok_200(f"{url}/readyz", ssl_ctx(host.cfg.pki)), 120, f"ready at {url}")]


COMPONENT = Component("kube-apiserver", command, ready)
