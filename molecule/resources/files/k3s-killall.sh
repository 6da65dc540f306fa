#!/bin/sh
# Molecule stand-in for k3s-killall.sh: records that it ran.
set -eu
date +%s >> /var/lib/hecate-killall-runs
