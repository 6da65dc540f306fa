#!/bin/sh
# One step on the node for k3s_service (hecate_privilege sudo_command): read the unit's state, change it
# only when needed through the exact `sudo -n systemctl start|stop UNIT` the sudoers file allows,
# wait until it settled, and (after a stop, when asked) run k3s-killall.sh. The role passes this
# script to `sh -c` over a single ssh round trip and judges the result by the exit code alone:
#   0 nothing to do, 10 changed (or would change, in check mode),
#   2 unit not loaded, 3 sudo/systemctl refused, 4 did not settle in time, 5 killall failed.
# Usage: sh -c SCRIPT k3s_service UNIT start|stop TIMEOUT_S CHECK(0|1) KILLALL(0|1) KILLALL_PATH
unit=$1 action=$2 timeout=$3 check=$4 killall=$5 killall_path=$6
state() { systemctl show --property="$1" --value "$unit"; }
load=$(state LoadState)
before=$(state ActiveState)
echo "LoadState=$load"
echo "ActiveState=$before"
[ "$load" = loaded ] || exit 2
case $before in active | activating | reloading) running=1 ;; *) running=0 ;; esac
changed=0
if { [ "$action" = start ] && [ $running = 0 ]; } || { [ "$action" = stop ] && [ $running = 1 ]; }; then
    [ "$check" = 1 ] && exit 10
    sudo -n systemctl "$action" "$unit" || exit 3
    changed=1
    waited=0
    while :; do
        now=$(state ActiveState)
        if [ "$action" = start ]; then
            [ "$now" = active ] && break
        else
            case $now in active | activating | reloading | deactivating) ;; *) break ;; esac
        fi
        waited=$((waited + 1))
        if [ $waited -ge "$timeout" ]; then
            echo "ActiveStateAfter=$now"
            exit 4
        fi
        sleep 1
    done
    echo "ActiveStateAfter=$now"
fi
# Pods' containers outlive `systemctl stop k3s` by design; killall stops them too.
# ([c] keeps pgrep from matching this very script, whose sh -c command line holds the name.)
if [ "$action" = stop ] && [ "$killall" = 1 ] && [ -x "$killall_path" ]; then
    if [ $running = 1 ] || pgrep -f '[c]ontainerd-shim' >/dev/null 2>&1; then
        [ "$check" = 1 ] && exit 10
        sudo -n "$killall_path" || exit 5
        changed=1
    fi
fi
[ $changed = 1 ] && exit 10
exit 0
