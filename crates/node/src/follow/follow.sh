# Rendered by berth: how its scripts follow the API server. A script sets
# `api_server` (host:port), `api_ca`, `api_cert` and `api_key` (names no
# function of a script reuses), defines `reconcile` (which
# fails when something is to be tried again), and calls `follow` with the
# paths of the watches whose changes call it.

# A request to the API through openssl, which costs a fraction of what a
# kubectl costs: `api PATH` prints the answer to a GET, `api PATH METHOD
# BODY` sends BODY as a merge patch. A watch's changes print as they come
# (a refused one is closed, and made again by `changes`).
api() {
    local method=${2:-GET} body=${3:-}
    {
        printf '%s %s HTTP/1.1\r\nHost: kubernetes\r\nConnection: close\r\n' "$method" "$1"
        [ -z "$body" ] || printf 'Content-Type: application/merge-patch+json\r\nContent-Length: %s\r\n' "${#body}"
        printf '\r\n%s' "$body"
    } | openssl s_client -quiet -verify_return_error -connect "$api_server" \
        -CAfile "$api_ca" -cert "$api_cert" -key "$api_key" 2>/dev/null
}

# A Warning event on the object of kind $1 in namespace $2 named $3 (uid
# $4), for reason $5, saying $6, from component $7; through the script's
# `kubectl`.
warning_event() {
    local now
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    kubectl create -f - >/dev/null <<EOF
apiVersion: v1
kind: Event
metadata: {name: "$3.berth-$(date +%s%N)", namespace: "$2"}
involvedObject: {apiVersion: v1, kind: $1, namespace: "$2", name: "$3", uid: "$4"}
type: Warning
reason: $5
message: "$6"
source: {component: "$7"}
firstTimestamp: "$now"
lastTimestamp: "$now"
count: 1
EOF
}

# Prints a line whenever what the watch at $1 follows changes. A new watch
# prints its response headers first, so every (re)connection reconciles
# what changed while none was held.
changes() {
    while :; do
        api "$1"
        sleep 2
    done
}

# Waits until the API server is ready: requests it refuses while it boots
# take from the CPU a start waits on. Its port is watched the cheap way
# first.
until_ready() {
    until echo >"/dev/tcp/${api_server%:*}/${api_server##*:}"; do sleep 0.5; done 2>/dev/null
    until [ "$(api /readyz | tail -n 1)" = ok ]; do sleep 1; done
}

# Reconciles once the API server is ready, then at each change of the
# watches given, and 2 s after a reconcile that failed.
follow() {
    until_ready
    local path
    {
        for path in "$@"; do changes "$path" & done
        wait
    } | {
        retry=
        while :; do
            if [ -n "$retry" ]; then
                read -r -t 2 _
                status=$?
                # A timeout (above 128) tries again; the end of input ends.
                [ "$status" -eq 0 ] || [ "$status" -gt 128 ] || exit 1
            else
                read -r _ || exit 1
            fi
            # A burst of changes (a watch's headers, an object and those it
            # makes) is reconciled once.
            while read -r -t 0.3 _; do :; done
            retry=
            reconcile || { retry=1; echo "will try again in 2 s"; }
        done
    }
}
