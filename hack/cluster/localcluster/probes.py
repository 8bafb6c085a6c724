"""Readiness probes that need no binary: HTTP(S) GETs past any proxy, and a stub DNS query."""

from __future__ import annotations

import os
import socket
import ssl
import struct
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


def ssl_ctx(pki: Path, client: str | None = "admin", verify: bool = True) -> ssl.SSLContext:
    ctx = (
        ssl.create_default_context(cafile=str(pki / "ca.crt"))
        if verify
        else ssl._create_unverified_context()  # noqa: S323
    )
    if client:
        ctx.load_cert_chain(str(pki / f"{client}.crt"), str(pki / f"{client}.key"))
    return ctx


def http_get(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 3) -> tuple[int, str]:
    # never through an HTTP proxy from the environment: every address here is local
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
    )
    try:
        with opener.open(url, timeout=timeout) as r:
            return int(r.status), str(r.read().decode(errors="replace"))
    except urllib.error.HTTPError as e:
        return int(e.code), str(e.read().decode(errors="replace"))


def ok_200(
    url: str, ctx: ssl.SSLContext | None = None, body: str | None = None
) -> Callable[[], bool]:
    def check() -> bool:
        code, text = http_get(url, ctx)
        return code == 200 and (body is None or body in text)

    return check


class DnsError(RuntimeError):
    pass


def dns_query(name: str, server: str, port: int = 53, timeout: float = 2) -> list[str]:
    """A records for name from server (a minimal stub resolver)."""
    qid = os.getpid() & 0xFFFF
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, (server, port))
        data, _ = s.recvfrom(4096)
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", data[:12])
    if flags & 0xF:
        raise DnsError(f"DNS rcode {flags & 0xF} for {name}")
    i = 12
    for _ in range(qd):
        while data[i]:
            i += data[i] + 1
        i += 5
    out = []
    for _ in range(an):
        if data[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while data[i]:
                i += data[i] + 1
            i += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[i : i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            out.append(socket.inet_ntoa(data[i : i + 4]))
        i += rdlen
    return out
