#!/usr/bin/env bash
# Build the real observability stack the tests in tests/stack/ run, from Go modules only:
#   otelcol-graphai  a Collector with exactly the components deploy/otel-collector.yaml names,
#                    built by the OpenTelemetry Collector Builder (ocb) from
#                    deploy/collector-builder.yaml
#   jaeger           Jaeger v2 (github.com/jaegertracing/jaeger/cmd/jaeger), pinned below
#
# Usage: deploy/build-stack.sh [collector|jaeger|all]   (default: all; `make stack`)
#        deploy/build-stack.sh --paths                  print OTELCOL=... and JAEGER=..., build nothing
#
# Every binary lands in .cache/stack/<versions-hash>/ where the hash covers the Go version,
# GOOS/GOARCH, this recipe's version and every pinned module version (the whole ocb manifest
# for the Collector), so a warm machine rebuilds nothing and a version bump builds beside the
# old binary. Go's module cache, build cache and GOPATH are .cache/stack/go (gitignored): a CI
# cache of .cache/stack holds everything and nothing else.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${GRAPHAI_STACK_CACHE:-$ROOT/.cache/stack}
MANIFEST=$ROOT/deploy/collector-builder.yaml

# --- pins ---------------------------------------------------------------------------------
OCB_VERSION=v0.165.0       # go.opentelemetry.io/collector/cmd/builder; same release as the core modules
JAEGER_VERSION=v1.75.0     # github.com/jaegertracing/jaeger module tag v1.75.0 = Jaeger v2.12.0
RECIPE=1                   # bump when the build steps below change in a way that alters output
# -------------------------------------------------------------------------------------------

export GOPATH=$CACHE/go
export GOMODCACHE=$CACHE/go/pkg/mod
export GOCACHE=$CACHE/go/cache
export GOFLAGS="-mod=mod -buildvcs=false"
export GOMAXPROCS=${GOMAXPROCS:-2}
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export PATH=$GOPATH/bin:$PATH

command -v go >/dev/null || { echo "build-stack: go not found on PATH" >&2; exit 2; }
GOID="$(go env GOVERSION) $(go env GOOS)/$(go env GOARCH) recipe=$RECIPE"

hash_of() { sha256sum | cut -c1-16; }
OTELCOL_HASH=$( { echo "$GOID"; echo "ocb $OCB_VERSION"; cat "$MANIFEST"; } | hash_of)
JAEGER_HASH=$( { echo "$GOID"; echo "jaeger $JAEGER_VERSION"; } | hash_of)
OTELCOL=$CACHE/$OTELCOL_HASH/otelcol-graphai
JAEGER=$CACHE/$JAEGER_HASH/jaeger

if [[ "${1:-}" == "--paths" ]]; then
  echo "OTELCOL=$OTELCOL"
  echo "JAEGER=$JAEGER"
  exit 0
fi

now() { date +%s; }

build_collector() {
  if [[ -x $OTELCOL ]]; then echo "otelcol-graphai: cached at $OTELCOL"; return 0; fi
  local t0 dir work
  t0=$(now)
  dir=$CACHE/$OTELCOL_HASH
  mkdir -p "$dir"
  work=$(mktemp -d "$dir/.build.XXXXXX")
  echo "otelcol-graphai: building (ocb $OCB_VERSION) in $work"
  GOBIN=$GOPATH/bin go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
  sed "s#^\(  output_path:\).*#\1 $work/src#" "$MANIFEST" >"$work/manifest.yaml"
  # strict versioning: fail if Go's resolution moves any component off the pinned version
  "$GOPATH/bin/builder" --config="$work/manifest.yaml" --skip-strict-versioning=false
  mv "$work/src/otelcol-graphai" "$work/otelcol-graphai"
  {
    echo "built $(date -u +%FT%TZ) in $(( $(now) - t0 )) s with $GOID, GOMAXPROCS=$GOMAXPROCS"
    go version -m "$work/otelcol-graphai"
  } >"$work/versions.txt"
  mv "$work/versions.txt" "$dir/versions.txt"
  cp "$work/src/go.mod" "$dir/go.mod"
  mv "$work/otelcol-graphai" "$OTELCOL"   # last: the binary's presence means "complete"
  rm -rf "$work"
  echo "otelcol-graphai: built in $(( $(now) - t0 )) s -> $OTELCOL"
}

build_jaeger() {
  if [[ -x $JAEGER ]]; then echo "jaeger: cached at $JAEGER"; return 0; fi
  local t0 dir work
  t0=$(now)
  dir=$CACHE/$JAEGER_HASH
  mkdir -p "$dir"
  work=$(mktemp -d "$dir/.build.XXXXXX")
  echo "jaeger: building github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION in $work"
  (
    cd "$work"
    go mod init graphai.local/stack/jaeger >/dev/null 2>&1
    go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
    go build -trimpath -ldflags="-s -w" -o "$work/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
  )
  {
    echo "built $(date -u +%FT%TZ) in $(( $(now) - t0 )) s with $GOID, GOMAXPROCS=$GOMAXPROCS"
    go version -m "$work/jaeger"
  } >"$dir/versions.txt"
  cp "$work/go.mod" "$dir/go.mod"
  mv "$work/jaeger" "$JAEGER"
  rm -rf "$work"
  echo "jaeger: built in $(( $(now) - t0 )) s -> $JAEGER"
}

case "${1:-all}" in
  collector) build_collector ;;
  jaeger) build_jaeger ;;
  all) build_collector; build_jaeger ;;
  *) echo "usage: $0 [collector|jaeger|all|--paths]" >&2; exit 2 ;;
esac
