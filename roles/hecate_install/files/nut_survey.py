"""Look at this host's NUT before the installer touches it; print what was found as JSON.

usage: nut_survey.py [--root DIR] survey   the NUT set-up: Hecate's own or someone else's
       nut_survey.py [--root DIR] usb      the USB UPSes NUT knows (vendor:product ids)

Read-only. --root prefixes every path (/etc/nut, /proc, /sys, the udev rules): tests point it
at a tree of real files. Standard library only: it runs with the host's python3 before Hecate's
venv exists.

"survey" answers whether a NUT that Hecate's installer did not write is configured here (nut.conf
MODE other than none, a UPS in ups.conf, a user in upsd.users, settings in upsd.conf, a running
upsd or upsmon): the installer then leaves NUT alone unless told to manage it. A file is the
installer's own when one of its first lines carries MARKER (every template writes it).
"""

import glob
import json
import os
import re
import subprocess
import sys

MARKER = "Hecate's installer"
NUT_DIR = "/etc/nut"
NUT_RULES = (
    "/etc/udev/rules.d/62-nut-usbups.rules",
    "/lib/udev/rules.d/62-nut-usbups.rules",
    "/usr/lib/udev/rules.d/62-nut-usbups.rules",
)
SECTION = re.compile(r"^\s*\[([^\]]+)\]")
RULE = re.compile(r'ATTR\{idVendor\}=="([0-9A-Fa-f]{4})",\s*ATTR\{idProduct\}=="([0-9A-Fa-f]{4})"')
RULE_DRIVER = re.compile(r"^#.*\s-\s+([a-z0-9_-]+)\s*$")


def read(root, path):
    try:
        with open(root + path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def settings(text):
    """The lines that are not comments or blank."""
    lines = (line.strip() for line in (text or "").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def is_ours(text):
    return text is not None and any(MARKER in line for line in text.splitlines()[:5])


def nut_mode(text):
    mode = ""
    for line in settings(text):
        name, sep, value = line.partition("=")
        if sep and name.strip() == "MODE":
            mode = value.split("#")[0].strip().strip("\"'")
    return mode


def sections(text):
    return [m.group(1).strip() for m in map(SECTION.match, settings(text)) if m]


def ups_settings(text):
    """The first UPS section's `key = value` settings (the installer writes one)."""
    found, inside = {}, False
    for line in settings(text):
        if SECTION.match(line):
            if inside:
                break
            inside = True
        elif inside and "=" in line:
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip().strip("\"'")
    return found


def running(root):
    """Names of the running NUT daemons (upsd, upsmon) with their pids."""
    found = {}
    for path in glob.glob(root + "/proc/[0-9]*/comm"):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                name = handle.read().strip()
        except OSError:
            continue  # the process ended meanwhile
        if name in ("upsd", "upsmon"):
            found.setdefault(name, []).append(int(path.split("/")[-2]))
    return {name: sorted(pids) for name, pids in found.items()}


def survey(root):
    texts = {
        name: read(root, f"{NUT_DIR}/{name}")
        for name in ("nut.conf", "ups.conf", "upsd.conf", "upsd.users", "upsmon.conf")
    }
    ours = {name: is_ours(text) for name, text in texts.items()}
    found = []  # what says that someone else's NUT is configured here
    mode = nut_mode(texts["nut.conf"])
    if not ours["nut.conf"] and mode not in ("", "none"):
        found.append(f"{NUT_DIR}/nut.conf sets MODE={mode}")
    ups_names = sections(texts["ups.conf"])
    if not ours["ups.conf"] and ups_names:
        found.append(f"{NUT_DIR}/ups.conf defines the UPS {', '.join(ups_names)}")
    users = sections(texts["upsd.users"])
    if not ours["upsd.users"] and users:
        found.append(f"{NUT_DIR}/upsd.users defines the user {', '.join(users)}")
    if not ours["upsd.conf"] and settings(texts["upsd.conf"]):
        found.append(f"{NUT_DIR}/upsd.conf has settings ({settings(texts['upsd.conf'])[0]} ...)")
    monitors = [
        line.split()[1]
        for line in settings(texts["upsmon.conf"])
        if line.split()[0] == "MONITOR" and len(line.split()) > 1
    ]
    daemons = running(root)
    # an upsmon at work (set to watch a UPS, or running) is never masked by the installer
    upsmon = [f"{NUT_DIR}/upsmon.conf monitors {', '.join(monitors)}"] if monitors else []
    if "upsmon" in daemons:
        upsmon.append(f"upsmon is running (pid {', '.join(map(str, daemons['upsmon']))})")
    if not ours["nut.conf"]:
        # with the installer's own nut.conf, upsd is its own and an upsmon one added on top of
        # it (never masked): neither makes it someone else's NUT
        found += upsmon
        if "upsd" in daemons:
            found.append(f"upsd is running (pid {', '.join(map(str, daemons['upsd']))})")
    return {
        "existing": bool(found),
        "found": found,
        "ours": sorted(name for name, flag in ours.items() if flag),
        "ups_names": ups_names,
        "upsmon_in_use": upsmon,
        # the installer's own UPS section, to keep its USB ids on later runs
        "our_ups": ups_settings(texts["ups.conf"]) if ours["ups.conf"] else {},
    }


def nut_known_ids(root):
    """{(vendor, product): driver} from NUT's udev rules (the UPSes NUT supports), and the file."""
    for path in NUT_RULES:
        text = read(root, path)
        if text is None:
            continue
        known, driver = {}, ""
        for line in text.splitlines():
            comment = RULE_DRIVER.match(line.strip())
            if comment:
                driver = comment.group(1)
            match = RULE.search(line)
            if match and not line.lstrip().startswith("#"):
                known[(match.group(1).lower(), match.group(2).lower())] = driver
        return known, path
    return None, ""


def from_sysfs(root, known):
    devices = []
    for vendor_file in sorted(glob.glob(root + "/sys/bus/usb/devices/*/idVendor")):
        base = os.path.dirname(vendor_file)
        relative = base[len(root) :] if root else base
        vendor = (read("", vendor_file) or "").strip().lower()
        product = (read("", base + "/idProduct") or "").strip().lower()
        if (vendor, product) not in known:
            continue
        name = " ".join(
            (read("", f"{base}/{attr}") or "").strip() for attr in ("manufacturer", "product")
        ).strip()
        devices.append(
            {
                "vendor": vendor,
                "product": product,
                "driver": known[(vendor, product)],
                "name": name,
                "where": relative,
            }
        )
    return devices


def from_nut_scanner():
    """nut-scanner -U (when NUT's udev rules are not there to match sysfs against)."""
    try:
        done = subprocess.run(
            ["nut-scanner", "-U", "-P", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    devices = []
    for line in done.stdout.splitlines():
        fields = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if line.startswith("USB:") and "vendorid" in fields and "productid" in fields:
            devices.append(
                {
                    "vendor": fields["vendorid"].lower(),
                    "product": fields["productid"].lower(),
                    "driver": line[4:].split(",")[0].partition("=")[2].strip('"'),
                    "name": fields.get("product", ""),
                    "where": fields.get("bus", "") + ":" + fields.get("device", ""),
                }
            )
    return devices


def usb(root):
    known, rules = nut_known_ids(root)
    if known is not None:
        return {
            "devices": from_sysfs(root, known),
            "source": f"USB devices in /sys matched against NUT's known UPS ids ({rules})",
        }
    scanned = None if root else from_nut_scanner()
    if scanned is not None:
        return {"devices": scanned, "source": "nut-scanner -U"}
    return {"devices": [], "source": "", "note": "neither NUT's udev rules nor nut-scanner found"}


def main(argv):
    root = ""
    if len(argv) >= 2 and argv[0] == "--root":
        root, argv = argv[1].rstrip("/"), argv[2:]
    if argv not in (["survey"], ["usb"]):
        sys.stderr.write(__doc__)
        return 2
    result = survey(root) if argv == ["survey"] else usb(root)
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
