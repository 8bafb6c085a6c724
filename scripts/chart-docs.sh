#!/usr/bin/env bash
# Generate charts/mlkube/values.schema.json and the values table of charts/mlkube/README.md from
# charts/mlkube/values.yaml: the `# --` comments are the descriptions (both files), the
# `# @schema` comments the constraints (the schema). The README's prose lives in README.md.gotmpl.
#
#   scripts/chart-docs.sh              install the pinned tools if needed, regenerate in place
#   scripts/chart-docs.sh --out DIR    write values.schema.json and README.md into DIR instead
#   scripts/chart-docs.sh --install    only install the tools into ./bin
#
# The tools are Go modules, built with `go install` into ./bin at the pinned versions (skipped
# when ./bin already holds that version). Each is built inside a throwaway module that requires
# it, so go.sum is checked against the checksum database and a module proxy that refuses the
# version list (`go install mod@version` asks it for deprecations) still works.
# Exit status 3: Go is missing.
set -euo pipefail

HELM_DOCS_MODULE="github.com/norwoodj/helm-docs"
HELM_DOCS_PACKAGE="github.com/norwoodj/helm-docs/cmd/helm-docs"
SCHEMA_MODULE="github.com/losisin/helm-values-schema-json/v2"
SCHEMA_PACKAGE="github.com/losisin/helm-values-schema-json/v2"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# HELM_DOCS_VERSION, SCHEMA_VERSION: every pin is in tools.versions.
# shellcheck source=tools.versions
source "$ROOT/tools.versions"
BIN="$ROOT/bin"
CHART="$ROOT/charts/mlkube"

die() { echo "chart-docs: $1" >&2; exit "${2:-1}"; }

# The module version a Go binary was built from ("" when absent).
built_version() {
  if [[ -x "$1" ]] && command -v go >/dev/null 2>&1; then
    go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }'
  fi
}

# ensure BINARY MODULE PACKAGE VERSION
ensure() {
  local binary="$1" module="$2" package="$3" version="$4" work
  if [[ "$(built_version "$BIN/$binary" "$module")" == "$version" ]]; then
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "go is missing: install Go (1.22+) to build $binary $version" 3
  echo "chart-docs: installing $binary $version into bin/"
  work="$(mktemp -d "${TMPDIR:-/tmp}/chart-docs.XXXXXX")"
  if ! (
    cd "$work"
    export GOFLAGS="-mod=mod" GOBIN="$BIN" GOWORK=off
    go mod init chart-docs-tools && go get "$module@$version" && go install "$package"
  ) >"$work.log" 2>&1; then
    cat "$work.log" >&2
    rm -rf "$work" "$work.log"
    die "could not build $package@$version"
  fi
  rm -f "$work.log"
  rm -rf "$work"
  [[ "$(built_version "$BIN/$binary" "$module")" == "$version" ]] \
    || die "bin/$binary does not report $module $version"
}

install_tools() {
  mkdir -p "$BIN"
  # One install at a time (make -j, parallel test runs).
  if command -v flock >/dev/null 2>&1; then
    mkdir -p "$ROOT/.tools"
    exec 8>"$ROOT/.tools/chart-docs.lock"
    flock 8
  fi
  ensure helm-docs "$HELM_DOCS_MODULE" "$HELM_DOCS_PACKAGE" "$HELM_DOCS_VERSION"
  ensure helm-values-schema-json "$SCHEMA_MODULE" "$SCHEMA_PACKAGE" "$SCHEMA_VERSION"
}

# generate SCHEMA_FILE README_FILE
generate() {
  # Draft 7: what Helm 3 and 4 both validate. Every object rejects unknown keys unless its
  # `# @schema` comment says otherwise; no implicit `global` (the chart has no subcharts).
  local log
  log="$( (cd "$CHART" && "$BIN/helm-values-schema-json" --values values.yaml --output "$1" \
    --draft 7 --indent 2 --use-helm-docs --no-additional-properties --no-default-global \
    --schema-root.title "mlkube chart values") 2>&1)" || die "helm-values-schema-json failed: $log"
  "$BIN/helm-docs" --chart-search-root "$CHART" --template-files README.md.gotmpl \
    --sort-values-order file --ignore-non-descriptions --log-level warning --dry-run >"$2.tmp"
  mv -f "$2.tmp" "$2"
}

case "${1:-}" in
  "")
    install_tools
    generate "$CHART/values.schema.json" "$CHART/README.md"
    echo "chart-docs: wrote charts/mlkube/values.schema.json and charts/mlkube/README.md"
    ;;
  --out)
    [[ -n "${2:-}" ]] || die "usage: scripts/chart-docs.sh --out DIR" 2
    install_tools
    mkdir -p "$2"
    out="$(cd "$2" && pwd)"
    generate "$out/values.schema.json" "$out/README.md"
    ;;
  --install)
    install_tools
    ;;
  -h|--help)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    ;;
  *)
    die "unknown argument '$1' (see --help)" 2
    ;;
esac
