#!/bin/sh
# The node's NTP state for Hecate's time_sync gate, in one step: yes, no or unknown on stdout,
# always exit 0 (an unknown state is Hecate's to judge, not a task failure).
# systemd's view first (timesyncd, or any NTP client systemd knows of), then chrony's.
# Usage: sh -c SCRIPT time_sync TIMEOUT_S
timeout_s=$1
answer=$(timeout "$timeout_s" timedatectl show -p NTPSynchronized --value 2>/dev/null)
case $answer in
    yes | no)
        echo "$answer"
        exit 0
        ;;
esac
if tracking=$(timeout "$timeout_s" chronyc -n tracking 2>/dev/null); then
    if echo "$tracking" | grep -Eq 'Leap status *: *Normal'; then echo yes; else echo no; fi
else
    echo unknown
fi
