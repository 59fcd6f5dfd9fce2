#!/usr/bin/env bash
# Builds the real peers the end-to-end tests and the packaging tests run,
# from Go modules only (the Go module proxy is the one source), into a
# cache folder outside target/ that later runs reuse:
#
#   $CACHE/k8s/<version>/{kube-apiserver,etcd}   a KUBEBUILDER_ASSETS folder
#   $CACHE/bin/{pebble,pebble-challtestsrv,acme-dns,helm,kubectl}  links to the above
#
#   bash e2e/assets.sh            # builds what is missing, prints build times
#   bash e2e/assets.sh --print    # prints the shell exports for the tests
#
# Versions (override with the variables below):
# - Kubernetes: the chart's floor (kubeVersion >= 1.30; 1.30.14 is the
#   newest 1.30 patch the module proxy serves) and the newest release
#   served; oldest first: kubectl comes from the last, and .ci/test.sh runs
#   the whole test suite against the last.
# - etcd 3.6 for both: kube-apiserver 1.30 through 1.37 support it.
# - Pebble 2.10 (ARI and profiles; Debian's 2.4 has neither), Helm 4.
#
# kube-apiserver is built the way envtest's binaries are: k8s.io/kubernetes
# replaces its staging modules (k8s.io/api, k8s.io/apiserver, ...) with
# local folders, which `go install pkg@version` refuses, so a throwaway
# module pins each of them to the matching published v0.X.Y and builds the
# command from there. The version is stamped in, as the release build does,
# so that `kubectl version` and Helm's kubeVersion checks see it.
set -euo pipefail

CACHE="${CERTWEAVE_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/certweave-e2e}"
K8S_VERSIONS="${CERTWEAVE_E2E_K8S_VERSIONS:-1.30.14 1.37.2}"
ETCD_VERSION="${CERTWEAVE_E2E_ETCD_VERSION:-3.6.17}"
PEBBLE_VERSION="${CERTWEAVE_E2E_PEBBLE_VERSION:-2.10.3}"
HELM_VERSION="${CERTWEAVE_E2E_HELM_VERSION:-4.3.2}"

# GOPROXY is Go's own setting (its default is the module proxy).
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

if [ "${1:-}" = "--print" ]; then
  echo "export CERTWEAVE_E2E_CACHE='$CACHE'"
  echo "export CERTWEAVE_E2E_K8S_VERSIONS='$K8S_VERSIONS'"
  echo "export PATH='$CACHE/bin':\"\$PATH\""
  exit 0
fi

command -v go >/dev/null || { echo "e2e/assets.sh: go is not installed; it builds kube-apiserver, etcd, Pebble and helm from Go modules" >&2; exit 1; }
mkdir -p "$CACHE/bin" "$CACHE/work"

# build NAME OUTPUT CMD...: runs CMD unless OUTPUT exists; prints the time.
build() {
  local name="$1" out="$2"; shift 2
  if [ -x "$out" ]; then
    echo "assets: $name: cached ($out)"
    return
  fi
  local start=$SECONDS
  echo "assets: $name: building"
  "$@"
  [ -x "$out" ] || { echo "assets: $name: the build left no $out" >&2; exit 1; }
  echo "assets: $name: built in $((SECONDS - start)) s"
}

# module_build DIR OUT LDFLAGS PKG VERSION: in the throwaway module DIR,
# adds PKG at VERSION and builds it to OUT. Built into a temporary name and
# moved, so a cut build leaves no binary that a later run would take for
# complete.
module_build() {
  local dir="$1" out="$2" ldflags="$3" pkg="$4" version="$5"
  (
    cd "$dir"
    # With its version: a bare `go get pkg` would upgrade to the newest.
    go get "$pkg@$version"
    go build -trimpath -ldflags "-s -w $ldflags" -o "$out.partial" "$pkg"
    mv "$out.partial" "$out"
  )
}

# kube_module VERSION: the throwaway module that builds Kubernetes commands
# of VERSION (set up once, shared by kube-apiserver and kubectl).
kube_module() {
  local version="$1" dir="$CACHE/work/kubernetes-$1"
  [ -f "$dir/go.mod" ] && { echo "$dir"; return; }
  rm -rf "$dir" && mkdir -p "$dir"
  local staging="0.${version#*.}"
  # The staging modules are the ones k8s.io/kubernetes replaces with ./staging/...
  local gomod
  gomod="$(cd "$dir" && go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
  {
    echo "module certweave.test/kubernetes-assets"
    echo
    echo "go 1.22"
    echo
    echo "require k8s.io/kubernetes v$version"
    echo
    sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9./-]*\) => \./staging/.*#replace \1 => \1 v'"$staging"'#p' "$gomod"
  } >"$dir/go.mod.partial"
  mv "$dir/go.mod.partial" "$dir/go.mod"
  echo "$dir"
}

# build_kube_cmd VERSION CMD OUT: k8s.io/kubernetes/cmd/CMD, version stamped.
build_kube_cmd() {
  local version="$1" cmd="$2" out="$3" dir
  dir="$(kube_module "$version")"
  local minor="${version#*.}"; minor="${minor%%.*}"
  local pkgv=k8s.io/component-base/version
  module_build "$dir" "$out" \
    "-X $pkgv.gitVersion=v$version -X $pkgv.gitMajor=1 -X $pkgv.gitMinor=$minor -X $pkgv.gitTreeState=clean -X $pkgv.buildDate=1970-01-01T00:00:00Z" \
    "k8s.io/kubernetes/cmd/$cmd" "v$version"
}

build_etcd() {
  local out="$1"
  local dir="$CACHE/work/etcd-$ETCD_VERSION"
  rm -rf "$dir" && mkdir -p "$dir"
  # etcd's modules replace each other with ../api etc. as well.
  cat >"$dir/go.mod" <<EOF
module certweave.test/etcd-assets

go 1.22

require go.etcd.io/etcd/server/v3 v$ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v$ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 v$ETCD_VERSION
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 v$ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 v$ETCD_VERSION
	go.etcd.io/etcd/server/v3 => go.etcd.io/etcd/server/v3 v$ETCD_VERSION
)
EOF
  module_build "$dir" "$out" "" go.etcd.io/etcd/server/v3 "v$ETCD_VERSION"
}

# go_install DIR PKG@VERSION: a module without replace directives.
go_install() {
  local dir="$1" pkg="$2"
  mkdir -p "$dir"
  GOBIN="$dir" GOFLAGS= go install -trimpath -ldflags "-s -w" "$pkg"
}

# tool NAME VERSION PKG: built into its own versioned folder, linked into bin/.
tool() {
  local name="$1" version="$2" pkg="$3" dir="$CACHE/tools/$1-$2"
  build "$name v$version" "$dir/$name" go_install "$dir" "$pkg@v$version"
  ln -sfn "$dir/$name" "$CACHE/bin/$name"
}

total_start=$SECONDS
echo "assets: cache $CACHE; $(go version)"
mkdir -p "$CACHE/tools/etcd-$ETCD_VERSION"
build "etcd v$ETCD_VERSION" "$CACHE/tools/etcd-$ETCD_VERSION/etcd" build_etcd "$CACHE/tools/etcd-$ETCD_VERSION/etcd"
newest=
for v in $K8S_VERSIONS; do
  mkdir -p "$CACHE/k8s/$v"
  build "kube-apiserver v$v" "$CACHE/k8s/$v/kube-apiserver" build_kube_cmd "$v" kube-apiserver "$CACHE/k8s/$v/kube-apiserver"
  ln -sfn "$CACHE/tools/etcd-$ETCD_VERSION/etcd" "$CACHE/k8s/$v/etcd"
  newest="$v"
done
# kubectl of the newest version (it talks to both): the tests apply
# webhook-config/ with `kubectl apply --server-side -k` as users do.
build "kubectl v$newest" "$CACHE/k8s/$newest/kubectl" build_kube_cmd "$newest" kubectl "$CACHE/k8s/$newest/kubectl"
ln -sfn "$CACHE/k8s/$newest/kubectl" "$CACHE/bin/kubectl"
tool pebble "$PEBBLE_VERSION" github.com/letsencrypt/pebble/v2/cmd/pebble
tool pebble-challtestsrv "$PEBBLE_VERSION" github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv
# acme-dns for the acmeDNS DNS-01 tests: 0.7.2 is the newest release the
# module proxy serves (later tags are not semantic versions). It predates Go
# modules, and `go install pkg@version` also asks the proxy for a version
# list it does not serve, so a throwaway module pins its dependencies (the
# newest that build it) and builds it; its SQLite driver needs cgo (a C
# compiler).
ACME_DNS_VERSION="${CERTWEAVE_E2E_ACME_DNS_VERSION:-0.7.2}"
build_acme_dns() {
  local out="$1" dir="$CACHE/work/acme-dns-$ACME_DNS_VERSION"
  rm -rf "$dir" && mkdir -p "$dir"
  printf '%s\n' \
    'module certweave.test/acme-dns-assets' '' 'go 1.22' '' 'require (' \
    "	github.com/joohoi/acme-dns v$ACME_DNS_VERSION" \
    '	github.com/BurntSushi/toml v1.6.0' \
    '	github.com/google/uuid v1.6.0' \
    '	github.com/julienschmidt/httprouter v1.3.0' \
    '	github.com/lib/pq v1.12.3' \
    '	github.com/mattn/go-sqlite3 v1.14.53' \
    '	github.com/miekg/dns v1.1.73' \
    '	github.com/rs/cors v1.11.1' \
    '	github.com/sirupsen/logrus v1.10.2' \
    '	golang.org/x/crypto v0.59.0' \
    ')' >"$dir/go.mod"
  (
    cd "$dir"
    CGO_ENABLED=1 go build -trimpath -ldflags "-s -w" -o "$out.partial" github.com/joohoi/acme-dns
    mv "$out.partial" "$out"
  )
}
mkdir -p "$CACHE/tools/acme-dns-$ACME_DNS_VERSION"
build "acme-dns v$ACME_DNS_VERSION" "$CACHE/tools/acme-dns-$ACME_DNS_VERSION/acme-dns" build_acme_dns "$CACHE/tools/acme-dns-$ACME_DNS_VERSION/acme-dns"
ln -sfn "$CACHE/tools/acme-dns-$ACME_DNS_VERSION/acme-dns" "$CACHE/bin/acme-dns"
tool helm "$HELM_VERSION" helm.sh/helm/v4/cmd/helm
# moto, a local AWS emulator (Route53 and STS for the Route53 DNS-01 tests),
# is a Python package: installed from PyPI into its own virtualenv, then a
# small launcher is written last, so a cut install leaves no launcher that a
# later run would take for complete.
MOTO_VERSION="${CERTWEAVE_E2E_MOTO_VERSION:-5.2.6}"
build_moto() {
  local dir="$1"
  command -v python3 >/dev/null || { echo "e2e/assets.sh: python3 is not installed; it runs moto for the Route53 tests" >&2; exit 1; }
  rm -rf "$dir/venv" && mkdir -p "$dir"
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  printf '#!/bin/sh\nexec "%s/venv/bin/moto_server" "$@"\n' "$dir" >"$dir/moto_server.partial"
  chmod +x "$dir/moto_server.partial"
  mv "$dir/moto_server.partial" "$dir/moto_server"
}
build "moto v$MOTO_VERSION" "$CACHE/tools/moto-$MOTO_VERSION/moto_server" build_moto "$CACHE/tools/moto-$MOTO_VERSION"
ln -sfn "$CACHE/tools/moto-$MOTO_VERSION/moto_server" "$CACHE/bin/moto_server"
echo "assets: ready in $((SECONDS - total_start)) s"
