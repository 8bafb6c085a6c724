#!/usr/bin/env bash
# Make Debian's podman work as root on a host like CI's (cgroup v1 hybrid, container-capped limits).
# Writes /etc/containers/containers.conf (podman 4.3 reads no containers.conf.d for root); run once,
# as root (CI runs it; so can you). An existing file not written by this script is left alone.
#   - runtime = "runc": Debian's crun fails here with "setrlimit RLIMIT_NOFILE: Operation not
#     permitted" and "cgroups in hybrid mode not supported".
#   - default_ulimits no higher than this host's hard limits (nproc also no higher than
#     kernel.pid_max: runc's setrlimit is refused above it here), or no container starts.
#   - network_backend = "netavark" (with aardvark-dns): containers on one network find each other
#     by name, as the container tests' Service names need. Without netavark installed, podman 4.3
#     falls back to CNI, where names resolve only with a dnsname plugin Debian does not ship.
set -euo pipefail
conf=/etc/containers/containers.conf
marker="# Written by mlkube images/setup-podman.sh"
if [ -s "$conf" ] && ! grep -qF "$marker" "$conf"; then
    echo "setup-podman: $conf exists; make sure it sets, under [engine], runtime = \"runc\" and," \
        "under [containers], default_ulimits no higher than 'ulimit -Hn' / 'ulimit -Hu'" >&2
    exit 0
fi
mkdir -p "$(dirname "$conf")"
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[ "$nofile" = unlimited ] && nofile=1048576
[ "$nproc" = unlimited ] && nproc=1048576
pid_max=$(cat /proc/sys/kernel/pid_max)
[ "$nproc" -gt "$pid_max" ] && nproc=$pid_max
cat >"$conf" <<CONF
$marker
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"

[network]
network_backend = "netavark"
CONF
echo "wrote $conf (runtime runc, netavark, nofile $nofile, nproc $nproc)"
