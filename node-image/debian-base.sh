#!/usr/bin/env bash
# Makes a minimal Debian bookworm image, berth/debian:bookworm, with
# debootstrap from this machine's configured Debian mirror, for machines that
# reach no container registry: `berth node-image build --base
# berth/debian:bookworm` then builds the node image on it.
# Idempotent: does nothing when the image exists. Needs root.
set -euo pipefail

image=${1:-berth/debian:bookworm}
log() { echo "debian-base: $*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
    log "$image exists, nothing to do"
    exit 0
fi
command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | awk '$2 == "bookworm" { print $1; exit }')
mirror=${mirror:-http://deb.debian.org/debian/}
root=$(mktemp -d "${TMPDIR:-/tmp}/berth-debian-base.XXXXXX")
trap 'rm -rf "$root"' EXIT

started=$(date +%s)
log "debootstrap bookworm from $mirror (about 3 minutes)"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -n 20 "$root.log" >&2
    exit 1
}
rm -f "$root.log"
# What a container image does not want: package lists and caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" --numeric-owner -c . | docker import - "$image" >/dev/null
log "imported $image in $(( $(date +%s) - started )) s"
