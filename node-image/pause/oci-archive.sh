#!/bin/sh
# Packs the static pause binary as an OCI image archive that
# `ctr images import` takes, named $2, written to $3.
set -eu
bin=$1 name=$2 out=$3
work=$(mktemp -d)
mkdir -p "$work/root" "$work/layout/blobs/sha256"
install -m 0755 "$bin" "$work/root/pause"

blob() { # file mediatype -> prints a descriptor and stores the blob
    sum=$(sha256sum "$1" | cut -d' ' -f1)
    cp "$1" "$work/layout/blobs/sha256/$sum"
    printf '{"mediaType":"%s","digest":"sha256:%s","size":%s' "$2" "$sum" "$(stat -c %s "$1")"
}

tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$work/root" -cf "$work/layer.tar" pause
layer_sum=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
arch=$(dpkg --print-architecture)
printf '{"architecture":"%s","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$arch" "$layer_sum" >"$work/config.json"
{
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":'
    blob "$work/config.json" application/vnd.oci.image.config.v1+json
    printf '},"layers":['
    blob "$work/layer.tar" application/vnd.oci.image.layer.v1.tar
    printf '}]}'
} >"$work/manifest.json"
{
    printf '{"schemaVersion":2,"manifests":['
    blob "$work/manifest.json" application/vnd.oci.image.manifest.v1+json
    printf ',"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
        "$arch" "$name" "${name##*:}"
} >"$work/layout/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"
tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$work/layout" -cf "$out" oci-layout index.json blobs
rm -rf "$work"
