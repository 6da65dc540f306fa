#!/usr/bin/env bash
# Install (or update) Hecate on this host: `sudo ./scripts/install.sh [--check] [-v]`.
#
# Runs playbooks/install.yml on localhost (connection local) with ansible-playbook from the
# checkout's venv (.venv, made and filled from this checkout when missing). Idempotent: a second
# run changes nothing. --check shows what would change (with diffs) without changing anything.
#
# Knobs (environment; every one is validated before anything changes):
#   HECATE_ENABLE_BOOTSTRAP=auto|1|0  hecate-bootstrap.service (startup at boot); auto: enabled
#   HECATE_ENABLE_UPDATE=1|0          hecate-update.timer (signed fast-forward + re-run installer)
#   HECATE_UPDATE_TRUSTED_KEYS=FILE   ssh allowed-signers file or GPG keyring: hecate-update installs
#                                     only commits signed by these keys; without it (now or from an
#                                     earlier run) the timer stays off
#   HECATE_START_DAEMON=1|0           start hecate.service (it is enabled either way)
#   HECATE_MANAGE_NUT=auto|1|0        manage NUT (upsd, driver, monitor user) and the udev rule;
#                                     auto (default): only where no other NUT is set up (a nut.conf
#                                     MODE, a UPS, a user, a running upsd/upsmon: left alone, and
#                                     said so); 1: always; 0: never. A replaced file is kept as
#                                     FILE.hecate-backup-YYYYmmddTHHMMSSZ; an upsmon at work is
#                                     never masked
#   HECATE_INSTALL_PACKAGES=1|0       install missing system packages with apt
#   HECATE_NUT_UPS_NAME=NAME          default: ups.target of the config before '@', else pyrphoros
#   HECATE_NUT_DRIVER=DRIVER          usbhid-ups (default), dummy-ups (readings from NAME.dev), ...
#   HECATE_NUT_PORT=PORT              the driver's port: auto (default, USB), /dev/ttyS0 ...
#   HECATE_NUT_VENDOR_ID=XXXX         USB vendor id, 4 hex digits, with HECATE_NUT_PRODUCT_ID=YYYY
#                                     (`lsusb`: ID XXXX:YYYY); default: the one UPS NUT knows found
#                                     on USB (none or several: the installer stops and says so)
#   HECATE_NUT_MONITOR_USER=NAME      default: ups.user of the config, else monuser
#   HECATE_NUT_MONITOR_PASSWORD=PW    default: kept from the password file, or generated once
#   HECATE_NUT_MASK_UPSMON=1|0        mask nut-monitor.service (Hecate decides shutdowns) where
#                                     NUT is managed and no upsmon is at work
#   HECATE_VENV=DIR                   where Hecate is installed (default /opt/hecate)
#   HECATE_WHEELHOUSE=DIR             install Python packages from these wheels only (offline;
#                                     scripts/make-wheelhouse DIR builds it); apt is then not used
#                                     unless HECATE_INSTALL_PACKAGES=1
# A knob not given keeps the value recorded by the last run in /etc/hecate/install.env (the
# installer says so); a knob that differs from it is listed before anything changes.
# Exit codes: 0 done, 1 the playbook failed, 2 bad knobs or usage (nothing changed).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prog="scripts/install.sh"

usage() {
    sed -n '2,/^# Exit codes/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

check=()
passthrough=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --check) check=(--check --diff) ;;
        --diff) passthrough+=(--diff) ;;
        -v | -vv | -vvv | -vvvv) passthrough+=("$1") ;;
        -h | --help) usage; exit 0 ;;
        --) shift; passthrough+=("$@"); break ;;
        *) printf '%s: unknown argument %q (see --help)\n' "$prog" "$1" >&2; exit 2 ;;
    esac
    shift
done

# ------------------------------------------------------------------------------------------------
# Knobs of the last run (/etc/hecate/install.env): a knob not given now keeps its recorded value
# (said so); a knob given with another value is shown before anything changes.

recorded_file="${HECATE_INSTALL_ENV_FILE:-/etc/hecate/install.env}"
reused=()
differing=()
ups_rename=""
if [[ -r "$recorded_file" ]]; then
    while IFS='=' read -r name value; do
        [[ "$name" =~ ^HECATE_[A-Z_]+$ && -n "$value" ]] || continue
        [[ "$name" == HECATE_NUT_MONITOR_PASSWORD ]] && continue
        current="${!name:-}"
        if [[ -z "$current" ]]; then
            export "$name=$value"
            reused+=("$name=$value")
        elif [[ "$current" != "$value" ]]; then
            differing+=("$name: recorded '$value', this run '$current'")
            [[ "$name" == HECATE_NUT_UPS_NAME ]] && ups_rename="$value -> $current"
        fi
    done <"$recorded_file"
fi
# An offline install (a wheelhouse) does not use apt unless told to.
offline_note=""
if [[ -n "${HECATE_WHEELHOUSE:-}" && -z "${HECATE_INSTALL_PACKAGES:-}" ]]; then
    export HECATE_INSTALL_PACKAGES=0
    offline_note="offline install (HECATE_WHEELHOUSE): apt is not used (HECATE_INSTALL_PACKAGES=1 to use it); install first: openssh-client python3-venv nut-client nut-server git"
fi

# ------------------------------------------------------------------------------------------------
# Knobs: validated here (all errors at once) and again by the role before it changes anything.

KNOWN_KNOBS=(
    HECATE_ENABLE_BOOTSTRAP HECATE_ENABLE_UPDATE HECATE_START_DAEMON HECATE_MANAGE_NUT
    HECATE_INSTALL_PACKAGES HECATE_NUT_UPS_NAME HECATE_NUT_DRIVER HECATE_NUT_VENDOR_ID
    HECATE_NUT_PRODUCT_ID HECATE_NUT_PORT HECATE_NUT_MONITOR_USER HECATE_NUT_MONITOR_PASSWORD
    HECATE_NUT_MASK_UPSMON HECATE_VENV HECATE_WHEELHOUSE HECATE_UPDATE_TRUSTED_KEYS
)
# HECATE_* variables that are not installer knobs (used by Hecate itself or its tests).
OTHER_HECATE_VARS=(HECATE_ASSETS_DIR HECATE_IMAGE_LOG HECATE_INSTALL_ENV_FILE)

errors=()
bad() { errors+=("$1"); }

check_bool() { # NAME
    local value="${!1:-}"
    [[ -z "$value" || "$value" == 0 || "$value" == 1 ]] || bad "$1 must be 0 or 1, not '$value'"
}
check_match() { # NAME REGEX WHAT
    local value="${!1:-}"
    [[ -z "$value" || "$value" =~ $2 ]] || bad "$1 must be $3, not '$value'"
}

for knob in HECATE_ENABLE_BOOTSTRAP HECATE_MANAGE_NUT; do
    case "${!knob:-auto}" in
        auto | 1 | 0) ;;
        *) bad "$knob must be auto, 1 or 0, not '${!knob}'" ;;
    esac
done
for knob in HECATE_ENABLE_UPDATE HECATE_START_DAEMON HECATE_INSTALL_PACKAGES \
    HECATE_NUT_MASK_UPSMON; do
    check_bool "$knob"
done
check_match HECATE_NUT_VENDOR_ID '^[0-9A-Fa-f]{4}$' "4 hex digits (e.g. 0764)"
check_match HECATE_NUT_PRODUCT_ID '^[0-9A-Fa-f]{4}$' "4 hex digits (e.g. 0601)"
if [[ -n "${HECATE_NUT_VENDOR_ID:-}" && -z "${HECATE_NUT_PRODUCT_ID:-}" ||
    -z "${HECATE_NUT_VENDOR_ID:-}" && -n "${HECATE_NUT_PRODUCT_ID:-}" ]]; then
    bad "HECATE_NUT_VENDOR_ID and HECATE_NUT_PRODUCT_ID go together: give both or neither"
fi
check_match HECATE_NUT_PORT '^[A-Za-z0-9_./:-]+$' "a driver port (auto, /dev/ttyS0, ...)"
check_match HECATE_NUT_UPS_NAME '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' \
    "a NUT UPS name (letters, digits, '_', '.', '-')"
check_match HECATE_NUT_MONITOR_USER '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' \
    "a NUT user name (letters, digits, '_', '.', '-')"
check_match HECATE_NUT_DRIVER '^[a-z0-9][a-z0-9_-]*$' "a NUT driver name (e.g. usbhid-ups, dummy-ups)"
check_match HECATE_VENV '^/[^[:space:]"\\]*[^/]$' "an absolute path without spaces or quotes"
check_match HECATE_WHEELHOUSE '^/[^[:space:]"\\]*$' "an absolute path without spaces or quotes"
if [[ -n "${HECATE_WHEELHOUSE:-}" && ! -d "${HECATE_WHEELHOUSE}" ]]; then
    bad "HECATE_WHEELHOUSE ${HECATE_WHEELHOUSE} is not a directory"
fi
check_match HECATE_UPDATE_TRUSTED_KEYS '^/[^[:space:]"\\]*[^/]$' "an absolute path without spaces or quotes"
if [[ -n "${HECATE_UPDATE_TRUSTED_KEYS:-}" && ! -s "${HECATE_UPDATE_TRUSTED_KEYS}" ]]; then
    bad "HECATE_UPDATE_TRUSTED_KEYS ${HECATE_UPDATE_TRUSTED_KEYS} is not a non-empty file"
fi
if [[ "${HECATE_NUT_MONITOR_PASSWORD:-}" =~ [[:space:]\"\\] ]]; then
    bad "HECATE_NUT_MONITOR_PASSWORD must not contain whitespace, quotes or backslashes"
fi
if [[ "$root" =~ [[:space:]\"\\] ]]; then
    bad "the checkout's path ($root) must not contain spaces or quotes"
fi
while IFS='=' read -r name _; do
    [[ "$name" == HECATE_* ]] || continue
    known=0
    for each in "${KNOWN_KNOBS[@]}" "${OTHER_HECATE_VARS[@]}"; do
        [[ "$name" == "$each" ]] && known=1
    done
    [[ $known == 1 ]] || bad "$name is not an installer knob (typo?); see $prog --help"
done < <(env)

if [[ ${#errors[@]} -gt 0 ]]; then
    printf '%s: nothing changed, fix these knobs first:\n' "$prog" >&2
    printf '  - %s\n' "${errors[@]}" >&2
    exit 2
fi

if [[ ${#reused[@]} -gt 0 ]]; then
    printf '%s: reusing the knobs of the last run (%s):\n' "$prog" "$recorded_file"
    printf '  %s\n' "${reused[@]}"
fi
if [[ ${#differing[@]} -gt 0 ]]; then
    printf '%s: these knobs differ from the last run and will change the install:\n' "$prog" >&2
    printf '  - %s\n' "${differing[@]}" >&2
fi
if [[ -n "$ups_rename" ]]; then
    printf '%s: WARNING: the UPS is renamed in NUT (%s): ups.target in the config must follow\n' \
        "$prog" "$ups_rename" >&2
fi
[[ -z "$offline_note" ]] || printf '%s: %s\n' "$prog" "$offline_note"

if [[ $EUID -ne 0 ]]; then
    printf '%s: run as root (sudo %s)\n' "$prog" "$prog" >&2
    exit 2
fi

# ------------------------------------------------------------------------------------------------
# ansible-playbook from the checkout's venv.

venv="$root/.venv"
pip_source=()
if [[ -n "${HECATE_WHEELHOUSE:-}" ]]; then
    pip_source=(--no-index --find-links "$HECATE_WHEELHOUSE")
fi

ensure_venv() {
    if [[ -x "$venv/bin/ansible-playbook" ]]; then
        return
    fi
    if [[ ${#check[@]} -gt 0 ]] && ! python3 -c 'import ensurepip' 2>/dev/null; then
        printf '%s --check: %s needs python3-venv to be made; run once without --check\n' \
            "$prog" "$venv" >&2
        exit 2
    fi
    if ! python3 -c 'import ensurepip' 2>/dev/null && [[ "${HECATE_INSTALL_PACKAGES:-1}" == 0 ]]; then
        printf '%s: python3-venv is missing and apt is not to be used: install it first\n' \
            "$prog" >&2
        exit 2
    fi
    if ! python3 -c 'import ensurepip' 2>/dev/null; then
        echo "$prog: installing python3-venv (for $venv)"
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -q
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends \
            python3-venv
    fi
    echo "$prog: making $venv (ansible-core from this checkout's dependencies)"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    timeout 900 "$venv/bin/pip" install -q --disable-pip-version-check --no-input \
        "${pip_source[@]}" -e "$root"
}
ensure_venv

# Knobs -> extra vars (JSON, so that types and odd characters survive); the file is root-only
# because it may hold the NUT password.
vars_file="$(mktemp /tmp/hecate-install-vars.XXXXXX.json)"
trap 'rm -f "$vars_file"' EXIT
chmod 600 "$vars_file"
HECATE_INSTALL_SOURCE="$root" "$venv/bin/python" - "$vars_file" <<'PY'
import json
import os
import sys

env = os.environ
out = {"hecate_install_source": env["HECATE_INSTALL_SOURCE"]}
booleans = {
    "HECATE_ENABLE_UPDATE": "hecate_install_enable_update",
    "HECATE_START_DAEMON": "hecate_install_start_daemon",
    "HECATE_INSTALL_PACKAGES": "hecate_install_packages",
    "HECATE_NUT_MASK_UPSMON": "hecate_install_nut_mask_upsmon",
}
strings = {
    "HECATE_ENABLE_BOOTSTRAP": "hecate_install_enable_bootstrap",
    "HECATE_MANAGE_NUT": "hecate_install_manage_nut",
    "HECATE_NUT_PORT": "hecate_install_nut_port",
    "HECATE_NUT_UPS_NAME": "hecate_install_nut_ups_name",
    "HECATE_NUT_DRIVER": "hecate_install_nut_driver",
    "HECATE_NUT_VENDOR_ID": "hecate_install_nut_vendor_id",
    "HECATE_NUT_PRODUCT_ID": "hecate_install_nut_product_id",
    "HECATE_NUT_MONITOR_USER": "hecate_install_nut_monitor_user",
    "HECATE_NUT_MONITOR_PASSWORD": "hecate_install_nut_monitor_password",
    "HECATE_VENV": "hecate_install_venv",
    "HECATE_WHEELHOUSE": "hecate_install_pip_wheelhouse",
    "HECATE_UPDATE_TRUSTED_KEYS": "hecate_install_update_trusted_keys",
}
for name, var in booleans.items():
    if env.get(name):
        out[var] = env[name] == "1"
for name, var in strings.items():
    if env.get(name):
        out[var] = env[name]
with open(sys.argv[1], "w", encoding="utf-8") as handle:
    json.dump(out, handle)
PY

cd "$root"
export ANSIBLE_CONFIG="$root/ansible.cfg"
export ANSIBLE_ROLES_PATH="$root/roles"
export ANSIBLE_RETRY_FILES_ENABLED=False
# ansible.cfg's pipelining is ssh's ([ssh_connection]); the local connection reads this one.
# Without it every task copies its module to a temp dir and runs it from there: several
# processes more per task, most of a no-change run's time.
export ANSIBLE_PIPELINING=True
rc=0
"$venv/bin/ansible-playbook" -i localhost, -c local \
    "${check[@]}" "${passthrough[@]}" -e "@$vars_file" "$root/playbooks/install.yml" || rc=$?
if [[ $rc -ne 0 ]]; then
    printf '%s: the playbook failed (exit %s)\n' "$prog" "$rc" >&2
    exit 1
fi

# Next steps: what is still missing before the cluster is protected (hecate doctor).
hecate_bin="${HECATE_VENV:-/opt/hecate}/bin/hecate"
if [[ ${#check[@]} -eq 0 && -x "$hecate_bin" ]]; then
    echo
    echo "== next steps: hecate doctor --config /etc/hecate/hecate.yaml"
    # As the daemon's user: doctor then checks what the daemon itself can read and reach, and
    # its result in the state dir stays the daemon's (a root-owned file there would be changed
    # back by the next install run).
    as_daemon=()
    if id -u hecate-daemon >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1; then
        as_daemon=(runuser -u hecate-daemon --)
    fi
    if timeout 300 "${as_daemon[@]}" "$hecate_bin" doctor --config /etc/hecate/hecate.yaml; then
        echo "$prog: installed; the cluster is protected"
    else
        echo "$prog: installed, but the cluster is NOT protected yet: fix the FAIL lines above"
        echo "  (README, 'After install': hecate config init, the node side, hecate doctor)"
    fi
fi
