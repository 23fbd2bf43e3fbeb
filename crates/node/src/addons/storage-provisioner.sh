#!/bin/bash
# Rendered by berth: the provisioner behind the StorageClass "standard".
# Every node runs one. It provisions the claims whose first pod the
# scheduler placed on this node, as a directory under this node's /var with
# a PersistentVolume bound to this node, and removes the directory and the
# volume of a released claim whose reclaim policy is Delete. It follows the
# API through watches, so it costs nothing while nothing changes, and needs
# no image: kubectl comes from the cluster's own binaries.
set -u
node=$1
provisioner=@PROVISIONER@
root=@ROOT@
refused=/run/berth-storage
kubectl() { @KUBECTL@ --kubeconfig @KUBECONFIG@ "$@"; }

# One line per object, fields split by "|" (no field can hold one); `with`
# leaves a missing field empty instead of printing "<no value>".
claim_fields='{{.metadata.namespace}}|{{.metadata.name}}|{{.metadata.uid}}|{{with .metadata.annotations}}{{with index . "volume.kubernetes.io/selected-node"}}{{.}}{{end}}|{{with index . "volume.kubernetes.io/storage-provisioner"}}{{.}}{{else}}{{with index . "volume.beta.kubernetes.io/storage-provisioner"}}{{.}}{{end}}{{end}}{{else}}|{{end}}|{{with .spec.volumeName}}{{.}}{{end}}|{{with .spec.storageClassName}}{{.}}{{end}}|{{range .spec.accessModes}}{{.}},{{end}}|{{with .spec.resources}}{{with .requests}}{{.storage}}{{end}}{{end}}|{{with .spec.volumeMode}}{{.}}{{end}}|{{with .metadata.deletionTimestamp}}deleting{{end}}{{"\n"}}'
volume_fields='{{.metadata.name}}|{{with .metadata.annotations}}{{with index . "pv.kubernetes.io/provisioned-by"}}{{.}}{{end}}|{{with index . "io.berth/node"}}{{.}}{{end}}{{else}}|{{end}}|{{with .status}}{{with .phase}}{{.}}{{end}}{{end}}|{{with .spec.persistentVolumeReclaimPolicy}}{{.}}{{end}}|{{with .spec.hostPath}}{{.path}}{{end}}{{"\n"}}'

# Leaves a claim Pending with a Warning event on it that says why, once.
refuse() {
    local ns=$1 name=$2 uid=$3 why=$4
    [ -e "$refused/$uid" ] && return 0
    warning_event PersistentVolumeClaim "$ns" "$name" "$uid" ProvisioningFailed "$why" "$provisioner" || return 1
    : >"$refused/$uid"
    echo "refused $ns/$name: $why"
}

claim() {
    local ns name uid selected by volume class modes size mode deleting
    IFS='|' read -r ns name uid selected by volume class modes size mode deleting <<<"$1"
    [ "$by" = "$provisioner" ] && [ "$selected" = "$node" ] && [ -z "$volume" ] && [ -z "$deleting" ] || return 0
    local pv=pvc-$uid
    kubectl get persistentvolume "$pv" >/dev/null 2>&1 && return 0
    if [ "$mode" = Block ]; then
        refuse "$ns" "$name" "$uid" "block volumes are not served by $provisioner: its volumes are directories; ask for volumeMode Filesystem"
        return
    fi
    case ",$modes" in
    *,ReadWriteMany,* | *,ReadOnlyMany,*)
        local nodes
        nodes=$(kubectl get nodes -o name | wc -l) || return 1
        if [ "$nodes" -gt 1 ]; then
            refuse "$ns" "$name" "$uid" "ReadWriteMany and ReadOnlyMany are not served on a cluster of $nodes nodes: the volume is a directory on one node, which pods on the others cannot reach; ask for ReadWriteOnce"
            return
        fi
        ;;
    esac
    local reclaim
    reclaim=$(kubectl get storageclass "$class" -o 'go-template={{with .reclaimPolicy}}{{.}}{{else}}Delete{{end}}') || return 1
    local dir=$root/$pv modes_list=${modes%,}
    mkdir -p "$dir" && chmod 0777 "$dir" || return 1
    kubectl create -f - >/dev/null <<EOF || return 1
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $pv
  annotations: {pv.kubernetes.io/provisioned-by: "$provisioner", io.berth/node: "$node"}
spec:
  capacity: {storage: "$size"}
  accessModes: [${modes_list//,/, }]
  persistentVolumeReclaimPolicy: $reclaim
  storageClassName: "$class"
  volumeMode: Filesystem
  claimRef: {apiVersion: v1, kind: PersistentVolumeClaim, namespace: "$ns", name: "$name", uid: "$uid"}
  hostPath: {path: "$dir", type: Directory}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: ["$node"]}
EOF
    echo "provisioned $pv for $ns/$name ($size, $modes_list, $reclaim) at $dir"
}

volume() {
    local pv by owner phase reclaim path
    IFS='|' read -r pv by owner phase reclaim path <<<"$1"
    [ "$by" = "$provisioner" ] && [ "$owner" = "$node" ] && [ "$phase" = Released ] && [ "$reclaim" = Delete ] || return 0
    # Only what this provisioner made is ever removed.
    [ "$path" = "$root/$pv" ] || return 0
    rm -rf -- "$path" || return 1
    kubectl delete persistentvolume "$pv" --wait=false >/dev/null || return 1
    echo "deleted $pv and $path"
}

@FOLLOW@

# Lists every claim and volume and acts on each; fails when one could not
# be acted on, to be tried again. When there are none, as in every new
# cluster while it boots, two cheap requests are all it costs.
reconcile() {
    local claims volumes list line failed=
    claims=$(api /api/v1/persistentvolumeclaims) && volumes=$(api /api/v1/persistentvolumes) || return 1
    case $claims in "HTTP/1.1 200"*) ;; *) return 1 ;; esac
    case $volumes in "HTTP/1.1 200"*) ;; *) return 1 ;; esac
    case "$claims$volumes" in *'"items":[]'*'"items":[]'*) return 0 ;; esac
    list=$(kubectl get persistentvolumeclaims --all-namespaces -o "go-template={{range .items}}$claim_fields{{end}}") || return 1
    while IFS= read -r line; do
        [ -z "$line" ] || claim "$line" || failed=1
    done <<<"$list"
    list=$(kubectl get persistentvolumes -o "go-template={{range .items}}$volume_fields{{end}}") || return 1
    while IFS= read -r line; do
        [ -z "$line" ] || volume "$line" || failed=1
    done <<<"$list"
    [ -z "$failed" ]
}

mkdir -p "$root" "$refused"
follow '/api/v1/persistentvolumeclaims?watch=1' '/api/v1/persistentvolumes?watch=1'
