#!/bin/bash
# Rendered by berth: the LoadBalancer controller of one profile. It runs in
# a container of its own on the host's network, so that each port of every
# Service of type LoadBalancer answers on the host's address @ADDRESS@,
# forwarded by a socat to the Service's NodePort on a node. It writes that
# address into the Service's status, and a port it cannot have (taken on
# the host, or by another Service) into the status's port errors and a
# Warning event. Services with a loadBalancerClass belong to another
# controller and are left alone.
set -u
address=@ADDRESS@
target=@TARGET@
run=/run/berth-lb
kubectl() { @KUBECTL@ --kubeconfig @KUBECONFIG@ "$@"; }

# One line per Service: namespace|name|uid|protocol:port:nodePort,...
fields='{{range .items}}{{if eq .spec.type "LoadBalancer"}}{{if not .spec.loadBalancerClass}}{{.metadata.namespace}}|{{.metadata.name}}|{{.metadata.uid}}|{{range .spec.ports}}{{.protocol}}:{{.port}}:{{with .nodePort}}{{.}}{{end}},{{end}}{{"\n"}}{{end}}{{end}}{{end}}'

@FOLLOW@

# Starts the forward of host port $2 ($1 tcp or udp) to NodePort $3, and
# prints nothing when it listens, else why not (a port taken on the host).
# Its output is not the forward's: the caller reads it to its end.
forward() {
    local proto=$1 port=$2 node_port=$3 pid i
    local log=$run/log/$proto-$port
    if [ "$proto" = tcp ]; then
        socat "TCP-LISTEN:$port,bind=$address,reuseaddr,fork" "TCP:$target:$node_port" >/dev/null 2>"$log" &
    else
        socat "UDP-LISTEN:$port,bind=$address,reuseaddr,fork" "UDP:$target:$node_port" >/dev/null 2>"$log" &
    fi
    pid=$!
    for i in $(seq 50); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null
            echo "cannot listen on $address:$port of the host: $(sed -n '/ E /s/.*: //p' "$log" | head -n 1)"
            return
        fi
        if ss -Hlnp --"$proto" "sport = :$port" | grep -q "pid=$pid,"; then
            echo "$pid" >"$run/pid/$proto-$port"
            return
        fi
        sleep 0.02
    done
    kill "$pid" 2>/dev/null
    echo "$address:$port did not listen within a second"
}

# A Warning event on Service $1/$2 (uid $3) that says $4, once per problem.
warn() {
    local ns=$1 name=$2 uid=$3 why=$4 seen
    seen=$run/warned/$uid-$(printf '%s' "$why" | md5sum | cut -c1-16)
    [ -e "$seen" ] && return 0
    warning_event Service "$ns" "$name" "$uid" PortNotForwarded "$why" berth-lb || return 1
    : >"$seen"
    echo "$ns/$name: $why"
}

# Lists the Services and makes the forwards match them: new ports forwarded,
# gone ones closed, each Service's status written when it changed. Fails
# while a port could not be had, to be tried again.
reconcile() {
    local list line ns name uid ports entry proto port node_port key why
    local failed= status_body ingress_ports served lower code
    local -A want=() owner=()
    list=$(kubectl get services --all-namespaces -o "go-template=$fields") || return 1
    # What each port should forward to; the first Service listed keeps a
    # port two ask for.
    while IFS='|' read -r ns name uid ports; do
        [ -n "$uid" ] || continue
        for entry in ${ports//,/ }; do
            IFS=: read -r proto port node_port <<<"$entry"
            proto=${proto,,}
            key=$proto-$port
            if [ -z "${owner[$key]:-}" ] && [ -n "$node_port" ] && [ "$proto" != sctp ]; then
                owner[$key]=$uid
                want[$key]=$node_port
            fi
        done
    done <<<"$list"
    # Forwards no longer wanted, or to another NodePort, are closed.
    for entry in "$run"/pid/*; do
        [ -e "$entry" ] || continue
        key=${entry##*/}
        read -r pid <"$entry"
        if [ "${want[$key]:-}" != "$(cat "$run/to/$key" 2>/dev/null)" ] || ! kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null
            rm -f "$entry" "$run/to/$key"
            echo "closed $address:${key#*-} (${key%%-*})"
        fi
    done
    while IFS='|' read -r ns name uid ports; do
        [ -n "$uid" ] || continue
        ingress_ports=
        served=
        for entry in ${ports//,/ }; do
            IFS=: read -r proto port node_port <<<"$entry"
            lower=${proto,,}
            key=$lower-$port
            why= code=
            if [ "$lower" = sctp ]; then
                why="SCTP ports are not forwarded" code=SCTPNotForwarded
            elif [ -z "$node_port" ]; then
                why="no NodePort to forward to (allocateLoadBalancerNodePorts is false)" code=NoNodePort
            elif [ "${owner[$key]}" != "$uid" ]; then
                why="$address:$port is used by another LoadBalancer Service" code=PortUsedByAnotherService
            elif [ ! -e "$run/pid/$key" ]; then
                why=$(forward "$lower" "$port" "$node_port") code=HostPortUnavailable
                if [ -z "$why" ]; then
                    echo "$node_port" >"$run/to/$key"
                    echo "forwarding $address:$port ($lower) to $ns/$name, NodePort $node_port"
                fi
            fi
            if [ -n "$why" ]; then
                # Each problem is named by its port, as `berth status` finds it.
                why="$port/$proto: $why"
                # A port taken on the host may be freed: tried again.
                [ "$code" != HostPortUnavailable ] || failed=1
                warn "$ns" "$name" "$uid" "$why" || failed=1
                # The status takes a code; the event says the rest.
                ingress_ports+="{\"port\":$port,\"protocol\":\"$proto\",\"error\":\"berth.io/$code\"},"
            else
                served=1
                ingress_ports+="{\"port\":$port,\"protocol\":\"$proto\"},"
            fi
        done
        case $ingress_ports in *error*) ;; *) rm -f "$run/warned/$uid"-* ;; esac
        if [ -n "$served" ]; then
            status_body="{\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"$address\",\"ipMode\":\"Proxy\",\"ports\":[${ingress_ports%,}]}]}}}"
        else
            status_body="{\"status\":{\"loadBalancer\":{\"ingress\":null}}}"
        fi
        if [ "$status_body" != "$(cat "$run/status/$uid" 2>/dev/null)" ]; then
            case $(api "/api/v1/namespaces/$ns/services/$name/status" PATCH "$status_body" | head -n 1) in
            "HTTP/1.1 200"*) printf '%s' "$status_body" >"$run/status/$uid" ;;
            *) failed=1 ;;
            esac
        fi
    done <<<"$list"
    [ -z "$failed" ]
}

# A stop ends the forwards with the container at once.
trap 'exit 0' TERM INT RTMIN+3
mkdir -p "$run"/pid "$run"/to "$run"/log "$run"/warned "$run"/status
follow '/api/v1/services?watch=1' &
wait
