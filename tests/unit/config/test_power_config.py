"""`power.nodes` (issue 25): each method parsed once at the boundary; every bad entry names its
key path, never a password (there is none in the config: only password files)."""

from __future__ import annotations

from typing import Any

import pytest

from hecate.config.model import parse_config
from hecate.config.power import IpmiPower, RedfishPower, WolPower
from hecate.errors import ConfigError


def _config(nodes: dict[str, Any]) -> dict[str, Any]:
    return {
        "ups": {"target": "ups@127.0.0.1"},
        "nodes": {"servers": ["titan-0"], "agents": ["titan-1", "titan-2"]},
        "power": {"nodes": nodes},
    }


def test_the_issue_example_parses_with_its_defaults() -> None:
    config = parse_config(
        _config(
            {
                "titan-0": {
                    "method": "ipmi",
                    "address": "10.0.0.50:623",
                    "user": "admin",
                    "password_file": "/etc/hecate/bmc-titan-0",
                },
                "titan-1": {
                    "method": "wol",
                    "mac": "AA-BB-CC-DD-EE-01",
                    "broadcast": "10.0.0.255",
                    "port": 9,
                },
                "titan-2": {
                    "method": "redfish",
                    "url": "https://10.0.0.52/",
                    "user": "admin",
                    "password_file": "/etc/hecate/bmc-titan-2",
                    "system": "1",
                },
            }
        )
    )
    ipmi, wol, redfish = (config.power.nodes[n] for n in ("titan-0", "titan-1", "titan-2"))
    assert isinstance(ipmi, IpmiPower) and ipmi.port == 623 and ipmi.cipher_suite == 17
    assert isinstance(wol, WolPower) and wol.mac == "aa:bb:cc:dd:ee:01"
    assert isinstance(redfish, RedfishPower) and redfish.url == "https://10.0.0.52"
    assert redfish.verify_tls is True
    assert config.power.method_of("titan-1") == "wol"
    assert set(config.secret_files()) == {
        "power.nodes.titan-0.password_file",
        "power.nodes.titan-2.password_file",
    }


def test_an_unlisted_node_relies_on_its_bios() -> None:
    config = parse_config(_config({}))
    assert config.power.method_of("titan-0") == "none"
    ipmi = parse_config(
        _config(
            {"titan-0": {"method": "ipmi", "address": "bmc0", "user": "u", "password_file": "/p"}}
        )
    ).power.nodes["titan-0"]
    assert isinstance(ipmi, IpmiPower) and ipmi.port == 623


# (entry, the key path the error must name, why it is refused)
BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"method": "wol", "mac": "aa:bb:cc:dd:ee"}, "power.nodes.titan-1.mac", "5 octets"),
    ({"method": "wol", "mac": "01:00:5e:00:00:01"}, "power.nodes.titan-1.mac", "multicast"),
    ({"method": "wol", "mac": "aa:bb:cc:dd:ee:01", "broadcast": "10.0.0"}, "broadcast", "not IPv4"),
    ({"method": "wol", "mac": "aa:bb:cc:dd:ee:01", "port": 0}, "port", "port 0"),
    (
        {"method": "ipmi", "address": "bmc:99999", "user": "u", "password_file": "/p"},
        "address",
        "port",
    ),
    (
        {"method": "ipmi", "address": "bmc", "user": "u", "password": "x"},
        "password",
        "no inline secret",
    ),
    (
        {
            "method": "ipmi",
            "address": "bmc",
            "user": "u",
            "password_file": "/p",
            "cipher_suite": 18,
        },
        "cipher_suite",
        "no suite 18",
    ),
    (
        {"method": "redfish", "url": "ftp://bmc", "user": "u", "password_file": "/p"},
        "url",
        "scheme",
    ),
    (
        {"method": "redfish", "url": "https://u:pw@bmc", "user": "u", "password_file": "/p"},
        "url",
        "credentials in the URL",
    ),
    (
        {
            "method": "redfish",
            "url": "https://bmc",
            "user": "u",
            "password_file": "/p",
            "system": "../x",
        },
        "system",
        "a path",
    ),
    ({"method": "magic"}, "power.nodes.titan-1", "unknown method"),
]


@pytest.mark.parametrize(("entry", "path", "why"), BAD, ids=[b[2] for b in BAD])
def test_a_bad_entry_names_its_key(entry: dict[str, Any], path: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config({"titan-1": entry}))
    text = "\n".join(caught.value.problems)
    assert path in text, (why, text)
    assert "pw@" not in text and "'x'" not in text


def test_a_node_not_in_the_cluster_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config({"titan-9": {"method": "none"}}))
    assert "power" in "\n".join(caught.value.problems)
    assert "titan-9" in "\n".join(caught.value.problems)


def test_a_bmc_password_on_the_wire_is_warned_about() -> None:
    def redfish(url: str, **extra: Any) -> dict[str, Any]:
        return {"method": "redfish", "url": url, "user": "u", "password_file": "/p", **extra}

    config = parse_config(
        _config(
            {
                "titan-0": redfish("http://10.0.0.50"),
                "titan-1": redfish("https://10.0.0.51", verify_tls=False),
                "titan-2": redfish("https://10.0.0.52", ca_file="/etc/hecate/bmc-ca.pem"),
            }
        )
    )
    warnings = config.power.exposure_warnings()
    assert len(warnings) == 2
    assert warnings[0].startswith("power.nodes.titan-0.url:") and "clear text" in warnings[0]
    assert warnings[1].startswith("power.nodes.titan-1.verify_tls:")
