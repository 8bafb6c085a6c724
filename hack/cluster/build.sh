#!/usr/bin/env bash
# Builds the pinned binaries of the local cluster once, into a cache outside the
# repository:
#
#   ${MLKUBE_CLUSTER_CACHE:-/var/cache/mlkube-cluster}/<K8S_VERSION>/bin
#
# (where exactly: `cluster.py env cache`, which this script asks)
#
# Each component has a stamp in .../stamps whose name carries its version and a
# hash of its build inputs, so a second run skips everything already built and
# a version bump (versions.env, src/*/go.mod) rebuilds only that component.
#
#   hack/cluster/build.sh            # build what is missing
#   hack/cluster/build.sh --force    # rebuild everything
#
# Everything comes from the Go module proxy (Kubernetes, etcd, containerd, CNI
# plugins, crictl, CoreDNS, kwok) plus Debian's runc; the pod sandbox ("pause")
# image is a small static Go program packed FROM scratch with podman.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/versions.env
. "$HERE/versions.env"

FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

# The cache of this Kubernetes version, as the harness names it (one place: localcluster/config.py)
DIR="$(python3 "$HERE/cluster.py" env cache)"
BIN="$DIR/bin"
STAMPS="$DIR/stamps"
IMAGES="$DIR/images"
LOGS="$DIR/build-logs"
mkdir -p "$BIN" "$STAMPS" "$IMAGES" "$LOGS"

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[[ -x "$GO" ]] || { echo "build.sh: no Go toolchain (looked for go on PATH and /usr/local/go/bin/go)" >&2; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0
NICE=(nice -n 10)
LDFLAGS_COMMON="-s -w"

T0=$SECONDS
say() { printf '[build %4ss] %s\n' "$((SECONDS - T0))" "$*"; }

# inputs_hash FUNCTION [FILE...] -> short hash of the build function's text (its
# flags) and of the files' contents
inputs_hash() { { declare -f "$1"; shift; cat "$@"; } 2>/dev/null | sha256sum | cut -c1-12; }

# build_step NAME VERSION HASH FUNCTION: runs FUNCTION unless its stamp exists.
build_step() {
    local name=$1 version=$2 hash=$3 fn=$4
    local stamp="$STAMPS/$name-${version//[:\/]/_}-$hash"
    if [[ $FORCE == 0 && -e "$stamp" ]]; then
        say "$name $version: cached"
        return
    fi
    local t=$SECONDS log="$LOGS/$name.log"
    say "$name $version: building (log: $log)"
    # a subshell outside any `if`, so that `set -e` holds inside the function
    local rc=0
    set +e
    ( set -e; "$fn" ) >"$log" 2>&1
    rc=$?
    set -e
    if [[ $rc != 0 ]]; then
        say "$name $version: FAILED (exit $rc) after $((SECONDS - t))s; last lines of $log:"
        tail -n 30 "$log" | sed 's/^/    /'
        exit 1
    fi
    rm -f "$STAMPS/$name-"*
    touch "$stamp"
    say "$name $version: built in $((SECONDS - t))s"
}

build_kube() {
    local pkg=k8s.io/component-base/version cg=k8s.io/client-go/pkg/version
    local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
    local x=""
    for p in $pkg $cg; do
        x+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
        x+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
    done
    cd "$HERE/src/kube"
    grep -q "k8s.io/kubernetes $K8S_VERSION" go.mod || { echo "src/kube/go.mod does not pin k8s.io/kubernetes $K8S_VERSION"; return 1; }
    GOFLAGS=-mod=mod "$GO" mod download
    GOFLAGS=-mod=mod "${NICE[@]}" "$GO" build -v -trimpath -ldflags="$LDFLAGS_COMMON$x" -o "$BIN/" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler \
        k8s.io/kubernetes/cmd/kubelet \
        k8s.io/kubernetes/cmd/kube-proxy
    "$BIN/kube-apiserver" --version
}

build_etcd() {
    cd "$HERE/src/etcd"
    grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" go.mod || { echo "src/etcd/go.mod does not pin etcd $ETCD_VERSION"; return 1; }
    GOFLAGS=-mod=mod "${NICE[@]}" "$GO" build -v -trimpath -ldflags="$LDFLAGS_COMMON" -o "$BIN/etcd" .
    "$BIN/etcd" --version
}

# go_install MODULE_PATH/PKG@VERSION [extra go flags...]: a release installed as
# its own main module (honours its go.sum), into $BIN.
go_install() {
    local target=$1; shift
    GOFLAGS="" GOBIN="$BIN" "${NICE[@]}" "$GO" install -v -trimpath "$@" "$target"
}

build_containerd() {
    local m=github.com/containerd/containerd/v2
    local ld="$LDFLAGS_COMMON -X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Revision=release"
    local tags=no_btrfs,no_devmapper,no_zfs,no_aufs
    for c in containerd containerd-shim-runc-v2 ctr; do
        go_install "$m/cmd/$c@$CONTAINERD_VERSION" -tags "$tags" -ldflags="$ld"
    done
    "$BIN/containerd" --version
}

build_cni() {
    mkdir -p "$DIR/cni"
    for p in main/bridge main/loopback ipam/host-local meta/portmap; do
        GOFLAGS="" GOBIN="$DIR/cni" "${NICE[@]}" "$GO" install -v -trimpath -ldflags="$LDFLAGS_COMMON" \
            "github.com/containernetworking/plugins/plugins/$p@$CNI_PLUGINS_VERSION"
    done
    ls -l "$DIR/cni"
    for b in bridge loopback host-local portmap; do
        [[ -x "$DIR/cni/$b" ]] || { echo "CNI plugin $b missing after the build"; return 1; }
    done
}

build_crictl() {
    go_install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" \
        -ldflags="$LDFLAGS_COMMON -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
    "$BIN/crictl" --version
}

build_coredns() {
    cd "$HERE/src/coredns"
    grep -q "github.com/coredns/coredns $COREDNS_VERSION" go.mod || { echo "src/coredns/go.mod does not pin coredns $COREDNS_VERSION"; return 1; }
    GOFLAGS=-mod=mod "${NICE[@]}" "$GO" build -v -trimpath -ldflags="$LDFLAGS_COMMON" -o "$BIN/coredns" .
    "$BIN/coredns" -plugins
}

build_kwok() {
    go_install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" \
        -ldflags="$LDFLAGS_COMMON -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
    "$BIN/kwok" --version || true
}

build_traefik() {
    cd "$HERE/src/traefik"
    grep -q "github.com/traefik/traefik/v3 $TRAEFIK_VERSION" go.mod || { echo "src/traefik/go.mod does not pin traefik $TRAEFIK_VERSION"; return 1; }
    GOFLAGS=-mod=mod "${NICE[@]}" "$GO" build -v -trimpath \
        -ldflags="$LDFLAGS_COMMON -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
        -o "$BIN/traefik" github.com/traefik/traefik/v3/cmd/traefik
    "$BIN/traefik" version
}

# static_image SRC IMAGE TAR: the static Go program in src/SRC packed FROM scratch
# with podman (src/SRC/Containerfile), saved as IMAGES/TAR for `ctr images import`.
static_image() {
    local src=$1 image=$2 tar=$3 work
    work="$(mktemp -d)"
    cd "$HERE/src/$src"
    "$GO" build -trimpath -ldflags="$LDFLAGS_COMMON" -o "$work/$src" .
    cp Containerfile "$work/"
    podman build --network=none -q -t "$image" "$work"
    rm -f "$IMAGES/$tar"
    podman save --format docker-archive -o "$IMAGES/$tar" "$image"
    rm -rf "$work"
    ls -l "$IMAGES/$tar"
}

build_pause() { static_image pause "$PAUSE_IMAGE" pause.tar; }

build_local_path_helper() { static_image local-path-helper "$LOCAL_PATH_HELPER_IMAGE" local-path-helper.tar; }

build_local_path() {
    go_install "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION" -ldflags="$LDFLAGS_COMMON"
    "$BIN/local-path-provisioner" --version
}

say "cache: $DIR"
command -v runc >/dev/null || { say "runc not found: apt-get install -y runc (Debian's 1.1.5 is what this cluster uses)"; exit 1; }
build_step kube "$K8S_VERSION" "$(inputs_hash build_kube "$HERE/src/kube/go.mod" "$HERE/src/kube/go.sum")" build_kube
build_step etcd "$ETCD_VERSION" "$(inputs_hash build_etcd "$HERE/src/etcd/go.mod" "$HERE/src/etcd/go.sum" "$HERE/src/etcd/main.go")" build_etcd
build_step containerd "$CONTAINERD_VERSION" "$(inputs_hash build_containerd)" build_containerd
build_step cni-plugins "$CNI_PLUGINS_VERSION" "$(inputs_hash build_cni)" build_cni
build_step crictl "$CRICTL_VERSION" "$(inputs_hash build_crictl)" build_crictl
build_step coredns "$COREDNS_VERSION" \
    "$(inputs_hash build_coredns "$HERE/src/coredns/go.mod" "$HERE/src/coredns/go.sum" "$HERE/src/coredns/main.go")" \
    build_coredns
if [[ "${MLKUBE_CLUSTER_KWOK:-1}" == 1 ]]; then
    build_step kwok "$KWOK_VERSION" "$(inputs_hash build_kwok)" build_kwok
fi
if [[ "${MLKUBE_CLUSTER_INGRESS:-1}" == 1 ]]; then
    build_step traefik "$TRAEFIK_VERSION" "$(inputs_hash build_traefik "$HERE/src/traefik/go.mod" "$HERE/src/traefik/go.sum")" build_traefik
fi
build_step local-path "$LOCAL_PATH_VERSION" "$(inputs_hash build_local_path)" build_local_path
build_step pause "$PAUSE_IMAGE" "$(inputs_hash build_pause "$HERE/src/pause/main.go" "$HERE/src/pause/Containerfile")" build_pause
build_step local-path-helper "$LOCAL_PATH_HELPER_IMAGE" \
    "$(inputs_hash build_local_path_helper "$HERE/src/local-path-helper/main.go" "$HERE/src/local-path-helper/Containerfile")" \
    build_local_path_helper
say "done: $(cd "$BIN" && echo *)"
