#!/usr/bin/env bash
# Puts into DIR the runtime binaries the end-to-end tests serve from a mirror
# on 127.0.0.1, where no release page of etcd, containerd or runc can be
# reached: Debian's own builds, from this machine's Debian mirror.
#   DIR/v1/   etcd 3.5.16 and containerd 1.7.24 (trixie), runc 1.1.5
#             (bookworm; trixie's wants a newer C library than the node's)
#   DIR/v2/   containerd 2.1.9 (sid), whose configuration berth renders for
#             current Kubernetes
# Idempotent: does nothing when DIR holds them.
set -euo pipefail

dir=${1:?usage: runtime-fixtures.sh DIR}
log() { echo "runtime-fixtures: $*" >&2; }
[ -x "$dir/v1/etcd" ] && [ -x "$dir/v1/runc" ] && [ -x "$dir/v2/containerd" ] && exit 0

mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | awk '$2 == "bookworm" { print $1; exit }')
mirror=${mirror:-http://deb.debian.org/debian/}
mirror=${mirror%/}
work=$(mktemp -d "${TMPDIR:-/tmp}/berth-fixtures.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Unpacks the newest PACKAGE of SUITE into $work/SUITE.
fetch() {
    local suite=$1 package=$2 file
    [ -f "$work/$suite.Packages" ] ||
        curl -fsS -m 120 "$mirror/dists/$suite/main/binary-amd64/Packages.xz" | xz -dc >"$work/$suite.Packages"
    file=$(awk -v p="$package" '$1 == "Package:" { cur = $2 } $1 == "Filename:" && cur == p { print $2; exit }' "$work/$suite.Packages")
    [ -n "$file" ] || { log "$suite has no $package"; exit 1; }
    log "fetching $file"
    curl -fsS -m 300 -o "$work/pkg.deb" "$mirror/$file"
    dpkg-deb -x "$work/pkg.deb" "$work/$suite"
}

fetch trixie etcd-server
fetch trixie containerd
fetch bookworm runc
fetch sid containerd
mkdir -p "$dir.new/v1" "$dir.new/v2"
cp "$work/trixie/usr/bin/etcd" "$work/trixie/usr/bin/containerd" "$work/trixie/usr/bin/containerd-shim-runc-v2" "$dir.new/v1/"
cp "$work/bookworm/usr/sbin/runc" "$dir.new/v1/"
cp "$work/sid/usr/bin/containerd" "$dir.new/v2/"
rm -rf "$dir"
mv "$dir.new" "$dir"
log "ready in $dir"
