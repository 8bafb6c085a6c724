#!/usr/bin/env bash
# Build the Python base image locally, for hosts that cannot pull python:3.11-slim-bookworm
# (air-gapped networks, a registry mirror that lacks it, or no registry at all).
#
#   images/local-base.sh [ENGINE]        # ENGINE: docker or podman (default: whichever is found)
#
# It bootstraps a minimal Debian bookworm (Python 3.11, the same as the official image) from the
# Debian mirror this host's apt already uses (override with DEBIAN_MIRROR=...), trusts this host's
# CA bundle (so builds work behind a TLS-inspecting proxy too), and imports it as
# $LOCAL_BASE_IMAGE. Needs root and debootstrap (apt-get install debootstrap). About a minute.
set -euo pipefail

IMAGE=${LOCAL_BASE_IMAGE:-mlkube-python-base:3.11-bookworm}
SUITE=bookworm
ENGINE=${1:-${CONTAINER_ENGINE:-}}
if [ -z "$ENGINE" ]; then
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
    elif command -v podman >/dev/null; then ENGINE=podman
    else echo "local-base: neither a running Docker nor Podman found" >&2; exit 1; fi
fi
[ "$(id -u)" = 0 ] || { echo "local-base: debootstrap needs root (sudo $0)" >&2; exit 1; }
command -v debootstrap >/dev/null || {
    echo "local-base: debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    # The first Debian archive this host's apt reads (deb822 or one-line format).
    mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')
    [ -n "$mirror" ] || mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | awk '$1 == "deb" && $2 !~ /^\[/ && $2 !~ /security/ {print $2; exit}')
fi
[ -n "$mirror" ] || { echo "local-base: no Debian mirror found in /etc/apt; set DEBIAN_MIRROR" >&2; exit 1; }

root=$(mktemp -d /var/tmp/mlkube-base.XXXXXX)
cleanup() { umount -R "$root/proc" 2>/dev/null || true; rm -rf "$root"; }
trap cleanup EXIT

echo "local-base: debootstrap $SUITE from $mirror (minbase + python3, about a minute)"
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    "$SUITE" "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -n 20 "$root.log" >&2; echo "local-base: debootstrap failed (log: $root.log)" >&2; exit 1; }
rm -f "$root.log"

# Trust what this host trusts (a corporate proxy's CA included).
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
# Slim it the way the official slim image is slimmed: no apt lists, docs, man pages or caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/var/log/* "$root"/tmp/* "$root"/root/.cache

echo "local-base: importing as $IMAGE ($ENGINE)"
out=$(tar -C "$root" --numeric-owner -c . | "$ENGINE" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$IMAGE" 2>&1) || { echo "$out" >&2; echo "local-base: import failed" >&2; exit 1; }
"$ENGINE" image inspect --format '{{.Size}}' "$IMAGE" \
    | awk -v img="$IMAGE" '{printf "local-base: %s built, %.0f MB\n", img, $1/1e6}'
