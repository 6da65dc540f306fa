#!/bin/sh
# One step on the node for node_power (hecate_privilege sudo_command): in poweroff mode start the
# poweroff command (`sudo -n systemctl poweroff`, the exact command the sudoers file allows)
# detached from this ssh session, so the session ends at once and the host goes down after it;
# in marker mode only write the marker file. The role passes this script to `sh -c` over one ssh
# round trip (no Python on the node) and judges the result by the exit code alone:
#   0 nothing to do (the marker is already there), 10 changed (or would change, in check mode),
#   2 unknown mode, 4 the marker could not be written.
# Usage: sh -c SCRIPT node_power MODE MARKER_PATH CHECK(0|1) COMMAND...
mode=$1 marker=$2 check=$3
shift 3
case $mode in
    marker)
        text='poweroff requested by hecate'
        [ -f "$marker" ] && [ "$(cat "$marker")" = "$text" ] && exit 0
        [ "$check" = 1 ] && exit 10
        printf '%s\n' "$text" > "$marker" && chmod 0644 "$marker" || exit 4
        exit 10
        ;;
    poweroff)
        [ "$check" = 1 ] && exit 10
        # Fire and forget, as the host is going down. The hangup that the end of this ssh
        # session (and its pty) sends must not reach the command: ignored here, before the fork,
        # so the child has it ignored from its first instruction (an ignored signal stays
        # ignored across exec), and setsid gives it a session of its own. (Without the trap,
        # this shell's exit could hang the child up before its setsid ran.)
        trap '' HUP
        setsid "$@" < /dev/null > /dev/null 2>&1 &
        exit 10
        ;;
esac
echo "unknown node_power_mode: $mode"
exit 2
