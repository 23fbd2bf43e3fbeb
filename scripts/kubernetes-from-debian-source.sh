#!/usr/bin/env bash
# Builds Kubernetes v1.20.2 (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, kubectl) from Debian bookworm's
# `kubernetes` source package into OUTDIR.
#
# This is the offline route for machines that reach Debian's mirror but no
# Kubernetes release server. Users with internet access never need it: berth
# downloads official releases. The result is meant for `berth cache import`.
#
# The tree vendors github.com/modern-go/reflect2 1.0.1, whose map iteration
# links against the Go runtime's map iterator with the signature it had
# before Go 1.18: built with Debian's Go 1.19 as is, every binary that
# serialises a map through json-iterator (unstructured objects, CRDs,
# webhooks) dies with "fatal error: fault" (modern-go/reflect2#26). reflect2
# 1.0.2, which Debian packages, is the fix; it is put in place of the
# vendored copy with `go build -overlay`, leaving the tree as Debian ships
# it. No other vendored package links against runtime internals on Linux.
# OUTDIR/BUILD-INFO records how the binaries were made; berth itself tells
# defective binaries from fixed ones by their content (`berth cache list`).
set -euo pipefail

out=${1:?usage: $0 OUTDIR}
version=v1.20.2
work=${BERTH_K8S_BUILD_DIR:-${TMPDIR:-/tmp}/berth-k8s-build}
started=$(date +%s)

log() { echo "kubernetes-from-debian-source: $*" >&2; }
reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2

# `apt-get source` needs a deb-src line; derive it from the configured mirror
# so the machine's own mirror is used, never a hard-coded one.
ensure_deb_src() {
    if apt-get source --print-uris kubernetes >/dev/null 2>&1; then return; fi
    local mirror
    mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' | awk '$2 == "bookworm" { print $1; exit }')
    [ -n "$mirror" ] || { log "no Debian mirror found in the apt sources"; exit 1; }
    log "adding a deb-src entry for $mirror"
    printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" >/etc/apt/sources.list.d/berth-deb-src.sources
    apt-get update -qq
}

# The tree builds with Go 1.19 in GOPATH mode; a newer `go` on PATH (the
# machines have Go 1.26) refuses GOPATH builds of it, so name Debian's.
go119=/usr/lib/go-1.19/bin

need_packages() {
    local missing=()
    [ -x "$go119/go" ] || missing+=(golang-1.19-go)
    command -v dpkg-source >/dev/null || missing+=(dpkg-dev)
    command -v git >/dev/null || missing+=(git)
    [ -d "$reflect2" ] || missing+=(golang-github-modern-go-reflect2-dev)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

need_packages
ensure_deb_src

gopath=$work/gopath
tree=$gopath/src/k8s.io/kubernetes
if [ ! -f "$tree/cmd/kube-apiserver/apiserver.go" ]; then
    log "fetching Debian's kubernetes source package"
    rm -rf "$work/src"
    mkdir -p "$work/src" "$gopath/src/k8s.io"
    (cd "$work/src" && apt-get source -qq kubernetes >/dev/null)
    srcdir=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
    rm -rf "$tree"
    mv "$srcdir" "$tree"
fi

export PATH=$go119:$PATH GOTOOLCHAIN=local
export GOPATH=$gopath GO111MODULE=off CGO_ENABLED=0 GOFLAGS=
export GOCACHE=${GOCACHE:-$work/go-build-cache}
cd "$tree"

# kube-apiserver embeds OpenAPI definitions that upstream generates at build
# time; `make generated_files` does not work here, so run openapi-gen directly
# over every package that asks for it.
gen_openapi() {
    local outpkg=$1; shift
    local inputs
    inputs=$(for dir in "$@"; do
        grep -rlE --include='*.go' '^// ?\+k8s:openapi-gen=true' -R "$dir" 2>/dev/null
    done | xargs -r -n1 dirname | sort -u | sed 's|^\./|k8s.io/kubernetes/|' | paste -sd, -)
    log "openapi-gen -> $outpkg ($(echo "$inputs" | tr ',' '\n' | wc -l) packages)"
    "$work/openapi-gen" --logtostderr=false \
        --input-dirs "$inputs" \
        --output-package "k8s.io/kubernetes/$outpkg" \
        --output-file-base zz_generated.openapi \
        --go-header-file hack/boilerplate/boilerplate.generatego.txt \
        --output-base "$gopath/src" \
        --report-filename "$work/openapi-violations-$(basename "$(dirname "$(dirname "$outpkg")")").txt"
}

if [ ! -f pkg/generated/openapi/zz_generated.openapi.go ]; then
    log "building openapi-gen"
    go build -o "$work/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
    gen_openapi pkg/generated/openapi ./pkg ./vendor/k8s.io
    gen_openapi vendor/k8s.io/kube-aggregator/pkg/generated/openapi \
        ./vendor/k8s.io/kube-aggregator/pkg/apis ./vendor/k8s.io/apimachinery
    gen_openapi vendor/k8s.io/apiextensions-apiserver/pkg/generated/openapi \
        ./vendor/k8s.io/apiextensions-apiserver/pkg/apis ./vendor/k8s.io/apimachinery ./vendor/k8s.io/api/autoscaling
fi

# reflect2 from Debian's package in place of the vendored 1.0.1: every
# vendored file is dropped and every file of the package added.
reflect2_version=$(dpkg-query -W -f '${Version}' golang-github-modern-go-reflect2-dev)
dpkg --compare-versions "$reflect2_version" ge 1.0.2 ||
    { log "golang-github-modern-go-reflect2-dev $reflect2_version is older than 1.0.2"; exit 1; }
vendored=$tree/vendor/github.com/modern-go/reflect2
overlay=$work/reflect2-overlay.json
{
    echo '{"Replace": {'
    for f in "$vendored"/*.go "$vendored"/*.s; do
        [ -e "$reflect2/$(basename "$f")" ] || printf '"%s": "",\n' "$f"
    done
    for f in "$reflect2"/*.go "$reflect2"/*.s; do
        case $f in *_test.go) continue ;; esac
        printf '"%s": "%s",\n' "$vendored/$(basename "$f")" "$f"
    done
    # JSON allows no trailing comma: a last entry that changes nothing.
    printf '"%s": ""}}\n' "$work/none.go"
} >"$overlay"

commit=$(printf '%s' "$version" | sha1sum | cut -c1-40)
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
for pkg in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=20"
    ldflags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

log "compiling (about 7 minutes on 2 cores with a cold Go build cache)"
mkdir -p "$out"
go build -p "$(nproc)" -overlay "$overlay" -ldflags "$ldflags" -o "$out/" \
    ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler \
    ./cmd/kubelet ./cmd/kube-proxy ./cmd/kubectl

for bin in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    [ -x "$out/$bin" ] || { log "missing $out/$bin after the build"; exit 1; }
done
cat >"$out/BUILD-INFO" <<EOF
kubernetes $version from Debian's source package $(dpkg-parsechangelog -l "$tree/debian/changelog" -S Version)
$(go version)
github.com/modern-go/reflect2 $reflect2_version (Debian's golang-github-modern-go-reflect2-dev, in place of the vendored 1.0.1)
EOF
"$out/kubectl" version --client --short 2>/dev/null || "$out/kubectl" version --client
log "built $version into $out in $(( $(date +%s) - started )) s"
