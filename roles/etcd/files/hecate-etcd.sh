#!/bin/sh
# Hecate's etcd work on one k3s server, one ssh round trip, no Python on the node. Every
# privileged command goes through $SUDO ("sudo -n" with node_privilege sudo_command: the exact
# commands configs/sudoers-hecate allows; empty under become). Prints key=value lines that
# Hecate parses (hecate/core/etcd.py parse_probe, hecate/flows/etcd.py); never deletes etcd data.
# Usage: sh -c SCRIPT hecate-etcd SUDO ACTION [ARGS...]
#   probe                         unit state, data dir, cluster-init, /health, member list, status
#   snapshot PATH TOKEN_FILE      does PATH exist (size, mtime, etcdctl status), is the token there
#   reset PATH TOKEN_FILE         k3s server --cluster-reset --cluster-reset-restore-path=PATH
#                                 --token-file TOKEN_FILE (checked not empty first)
#   move_aside DEST               move the etcd data dir to DEST (kept)
#   move_back SRC                 (drills) put SRC back as the data dir; a data dir there is
#                                 first moved aside itself
#   verify NAME PREFIX KEEP       the newest snapshot named NAME-*: path, size, etcdctl status;
#                                 when it checks out, remove all but the newest KEEP PREFIX-*
#                                 (Hecate's own; k3s's etcd-snapshot-* are never touched)
SUDO=$1 action=$2
shift 2
db=/var/lib/rancher/k3s/server/db
data=$db/etcd
snapshots=$db/snapshots
tls=/var/lib/rancher/k3s/server/tls/etcd
k3s=/usr/local/bin/k3s
etcd_api() { # PATH [POST]: etcd's HTTP/JSON gateway on this server, with k3s's client certs
    if [ -n "$2" ]; then
        $SUDO curl -sS --max-time 5 --cacert $tls/server-ca.crt --cert $tls/server-client.crt \
            --key $tls/server-client.key -X POST -d '{}' "https://127.0.0.1:2379$1" 2>&1 | tr -d '\n'
    else
        $SUDO curl -sS --max-time 5 --cacert $tls/server-ca.crt --cert $tls/server-client.crt \
            --key $tls/server-client.key "https://127.0.0.1:2379$1" 2>&1 | tr -d '\n'
    fi
}
etcdctl_api() { # ARGS...: the same through etcdctl, where curl is missing (JSON output)
    $SUDO etcdctl --endpoints=https://127.0.0.1:2379 --cacert=$tls/server-ca.crt \
        --cert=$tls/server-client.crt --key=$tls/server-client.key --command-timeout=5s \
        "$@" -w json 2>&1 | tr -d '\n'
}
file_info() { # size and mtime of a root-only file, or nothing
    $SUDO stat -c '%s %Y' "$1" 2>/dev/null
}
case $action in
probe)
    unit=$(systemctl is-active k3s 2>/dev/null || true)
    echo "unit=$unit"
    # k3s keeps $db on every server (SQLite's state.db too): not seeing it is a refused sudo
    if ! $SUDO stat -c %n $db >/dev/null 2>&1; then
        echo "error=cannot read $db (sudo refused? install the etcd rules of configs/sudoers-hecate)"
    elif $SUDO stat -c %n $data/member/snap/db >/dev/null 2>&1; then
        echo "data=present"
    elif $SUDO stat -c %n $data >/dev/null 2>&1; then
        echo "data=empty"
    else
        echo "data=missing"
    fi
    if systemctl show -p ExecStart k3s 2>/dev/null | grep -q -- 'cluster-init' ||
        $SUDO grep -qs '^cluster-init: *true' /etc/rancher/k3s/config.yaml; then
        echo "cluster_init=yes"
    else
        echo "cluster_init=no"
    fi
    # Embedded etcd lives in the k3s process: with k3s stopped nothing listens on 2379, and
    # etcdctl retries a refused connection until its command timeout (5 s per call, 15 s per
    # probe: most of a startup's time before the servers start).
    if [ "$unit" = inactive ] || [ "$unit" = failed ]; then
        echo "health=k3s is $unit: its embedded etcd is not running"
    elif command -v curl >/dev/null 2>&1; then
        echo "health=$(etcd_api /health)"
        echo "member_list=$(etcd_api /v3/cluster/member/list post)"
        echo "status=$(etcd_api /v3/maintenance/status post)"
    elif command -v etcdctl >/dev/null 2>&1; then
        echo "health=$(etcdctl_api endpoint health)"
        echo "member_list=$(etcdctl_api member list)"
        echo "status=$(etcdctl_api endpoint status)"
    else
        echo "health=neither curl nor etcdctl on this server"
    fi
    ;;
snapshot)
    path=$1 token_file=$2
    info=$(file_info "$path")
    if [ -n "$info" ]; then
        echo "exists=yes"
        echo "size=${info% *}"
        echo "mtime=${info#* }"
        if $SUDO head -c 16 "$path" >/dev/null 2>&1; then echo "readable=yes"; else echo "readable=no"; fi
        if command -v etcdctl >/dev/null 2>&1; then
            echo "etcdctl=$($SUDO etcdctl snapshot status "$path" -w json 2>&1 | tr -d '\n')"
        fi
    else
        echo "exists=no"
    fi
    tsize=$(file_info "$token_file")
    if [ -n "$tsize" ] && [ "${tsize% *}" -gt 0 ]; then echo "token=yes"; else echo "token=no"; fi
    ;;
reset)
    path=$1 token_file=$2
    token=$($SUDO cat "$token_file") || { echo "error=cannot read $token_file"; exit 3; }
    [ -n "$token" ] || { echo "error=$token_file is empty"; exit 3; }
    # the token by its file, never on the command line: `ps` shows that to every local user
    # its own log file (mktemp): a fixed name in /tmp could be made first by another user
    log=$(mktemp) || { echo "error=cannot make a temporary file"; exit 3; }
    $SUDO $k3s server --cluster-reset --cluster-reset-restore-path="$path" \
        --token-file "$token_file" >"$log" 2>&1
    rc=$?
    echo "rc=$rc"
    tail -c 2000 "$log" | sed 's/^/log=/'
    rm -f "$log"
    exit $rc
    ;;
move_aside)
    dest=$1
    if $SUDO stat -c %n "$dest" >/dev/null 2>&1; then
        # moved by an earlier attempt; a data dir made since (k3s started meanwhile) must not
        # stay either: k3s would start on it. Kept beside it, never deleted.
        if $SUDO stat -c %n $data >/dev/null 2>&1; then
            later="$dest.$(date +%s)"
            $SUDO mv $data "$later" || exit 3
            echo "moved=$later"
        else
            echo "moved=already $dest"
        fi
    elif $SUDO stat -c %n $data >/dev/null 2>&1; then
        $SUDO mv $data "$dest" || exit 3
        echo "moved=$dest"
    else
        echo "moved=nothing ($data missing)"
    fi
    ;;
move_back)
    src=$1
    $SUDO stat -c %n "$src" >/dev/null 2>&1 || { echo "error=$src missing"; exit 3; }
    if $SUDO stat -c %n $data >/dev/null 2>&1; then
        $SUDO mv $data "$data-old-$(date +%s)" || exit 3
    fi
    $SUDO mv "$src" $data || exit 3
    echo "moved=$data"
    ;;
verify)
    name=$1 prefix=$2 keep=$3
    path=$($SUDO ls -t $snapshots 2>/dev/null | grep "^$name-" | head -n 1)
    [ -n "$path" ] || { echo "error=no snapshot $name-* in $snapshots"; exit 3; }
    path=$snapshots/$path
    info=$(file_info "$path")
    size=${info% *}
    echo "path=$path"
    echo "size=$size"
    echo "mtime=${info#* }"
    good=0
    [ -n "$size" ] && [ "$size" -gt 0 ] && good=1
    if command -v etcdctl >/dev/null 2>&1; then
        status=$($SUDO etcdctl snapshot status "$path" -w json 2>&1 | tr -d '\n')
        echo "etcdctl=$status"
        case $status in *'"hash"'*) ;; *) good=0 ;; esac
    fi
    if command -v curl >/dev/null 2>&1; then
        echo "cluster=$(etcd_api /v3/maintenance/status post)"
    else
        echo "cluster=$(etcdctl_api endpoint status)"
    fi
    [ $good = 1 ] && [ -n "$keep" ] && [ "$keep" -gt 0 ] &&
        $SUDO ls -t $snapshots 2>/dev/null | grep "^$prefix-" | tail -n +$((keep + 1)) |
        while read -r old; do
            $SUDO rm -f -- "$snapshots/$old" && echo "pruned=$snapshots/$old"
        done
    exit 0
    ;;
*)
    echo "error=unknown action $action"
    exit 2
    ;;
esac
