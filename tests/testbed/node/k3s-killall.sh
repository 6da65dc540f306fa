#!/bin/sh
# /usr/local/bin/k3s-killall.sh on a twin node, like the real one: stop every k3s unit, then kill
# what `systemctl stop` leaves behind (KillMode=process): here the containerd-shim stand-in.
[ "$(id -u)" -eq 0 ] || exec sudo "$0" "$@"
for service in /etc/systemd/system/k3s*.service; do
  [ -s "$service" ] && systemctl stop "$(basename "$service")"
done
pidfile=/run/k3s-twin/containerd-shim.pid
if [ -s "$pidfile" ]; then
  pid="$(cat "$pidfile")"
  if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q '^containerd-shim'; then
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
fi
exit 0
