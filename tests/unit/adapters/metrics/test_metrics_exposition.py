"""Hecate's own text exposition, read back with prometheus_client's reference parser.

The format is written by hand (hecate/adapters/metrics/exposition.py says why); these tests hold it
to the
reference parser, on fixed cases and on arbitrary label values and help texts (hypothesis), and
check what the idle daemon imports.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from hecate.adapters.metrics.exposition import (
    CONTENT_TYPE,
    CollectorRegistry,
    Counter,
    CounterMetricFamily,
    Gauge,
    GaugeMetricFamily,
    format_value,
    make_wsgi_app,
    render_text,
)


def parsed(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(render_text(registry).decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_counters_and_gauges_read_back_as_written() -> None:
    registry = CollectorRegistry()
    polls = Counter("hecate_ups_polls", "UPS polls", ["ups"], registry=registry)
    polls.labels("pyrphoros").inc()
    polls.labels("pyrphoros").inc(2)
    polls.labels("statera")  # exists at 0 from the start
    threshold = Gauge("hecate_shutdown_threshold_seconds", "Threshold", registry=registry)
    threshold.set(330)
    samples = parsed(registry)
    assert samples[("hecate_ups_polls_total", (("ups", "pyrphoros"),))] == 3.0
    assert samples[("hecate_ups_polls_total", (("ups", "statera"),))] == 0.0
    assert samples[("hecate_shutdown_threshold_seconds", ())] == 330.0
    text = render_text(registry).decode()
    assert "# TYPE hecate_ups_polls_total counter\n" in text
    assert "_created" not in text


def test_labels_are_written_in_name_order_like_prometheus_client() -> None:
    registry = CollectorRegistry()
    errors = Counter("hecate_nut_errors", "Errors", ["ups", "kind"], registry=registry)
    errors.labels("pyrphoros", "driver_down").inc(5)
    assert 'hecate_nut_errors_total{kind="driver_down",ups="pyrphoros"} 5.0' in (
        render_text(registry).decode()
    )


def test_clear_removes_every_child() -> None:
    registry = CollectorRegistry()
    budget = Gauge("hecate_shutdown_budget_seconds", "Budget", ["source"], registry=registry)
    budget.labels("fallback").set(300)
    budget.clear()
    budget.labels("history").set(120)
    assert "fallback" not in render_text(registry).decode()


def test_misuse_is_refused() -> None:
    registry = CollectorRegistry()
    counter = Counter("x", "x", ["a"], registry=registry)
    with pytest.raises(ValueError, match="label values"):
        counter.labels("1", "2")
    with pytest.raises(ValueError, match="only goes up"):
        counter.labels("1").inc(-1)
    with pytest.raises(ValueError, match="has labels"):
        counter.inc()


def test_special_values_are_written_as_prometheus_reads_them() -> None:
    assert [format_value(v) for v in (math.inf, -math.inf, 1.0, 0.5)] == [
        "+Inf",
        "-Inf",
        "1.0",
        "0.5",
    ]
    assert format_value(math.nan) == "NaN"


class _Families:
    def __init__(self, label: str, doc: str, value: float) -> None:
        self.label, self.doc, self.value = label, doc, value

    def collect(self) -> list[Any]:
        gauge = GaugeMetricFamily("g", self.doc, labels=["l"])
        gauge.add_metric([self.label], self.value)
        counter = CounterMetricFamily("c_total", self.doc, labels=["l"])
        counter.add_metric([self.label], abs(self.value))
        return [gauge, counter]


@settings(max_examples=200, deadline=None)
@given(
    label=st.text(),
    doc=st.text().map(str.strip),  # help text is trimmed by every reader
    value=st.floats(allow_nan=False, allow_infinity=True),
)
def test_any_label_help_and_value_read_back_exactly(label: str, doc: str, value: float) -> None:
    """Quotes, backslashes, newlines, any Unicode: the reference parser reads what was meant."""
    registry = CollectorRegistry()
    registry.register(_Families(label, doc, value))
    families = {f.name: f for f in text_string_to_metric_families(render_text(registry).decode())}
    assert families["g"].documentation == doc
    assert families["g"].samples[0].labels == {"l": label}
    assert families["g"].samples[0].value == value
    assert families["c"].samples[0].name == "c_total"
    assert families["c"].samples[0].value == abs(value)


def _call(app: Any, method: str, path: str = "/metrics") -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app({"REQUEST_METHOD": method, "PATH_INFO": path}, start_response))
    return seen["status"], seen["headers"], body


def test_the_wsgi_app_serves_get_and_head_only() -> None:
    registry = CollectorRegistry()
    Gauge("up_here", "1", registry=registry).set(1)
    app = make_wsgi_app(registry)
    status, headers, body = _call(app, "GET")
    assert status == "200 OK"
    assert headers["Content-Type"] == CONTENT_TYPE
    assert b"up_here 1.0\n" in body
    status, headers, body = _call(app, "HEAD")
    assert (status, body) == ("200 OK", b"")
    assert _call(app, "POST")[0].startswith("405")
    assert _call(app, "GET", "/favicon.ico")[0].startswith("404")


def test_the_idle_daemon_loads_no_http_client_stack_and_no_ansible() -> None:
    """What the daemon imports to poll and serve /metrics (issue 23: idle RSS)."""
    code = (
        "import json, sys\n"
        "import hecate.daemon.service, hecate.adapters.metrics.registry\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(done.stdout))
    unwanted = {
        "prometheus_client",  # its import brings the rest of this list
        "http.server",
        "urllib.request",
        "wsgiref",
        "gzip",
        "http.client",  # and with it ssl and email: only a peer's request needs it
        "ansible_runner",
        "hecate.adapters.ansible.port",  # made on the first outage event, for the ssh warm-up
    }
    assert sorted(loaded & unwanted) == []
    assert "waitress" in loaded  # the check sees what the daemon does load


def test_one_sample_can_be_read_back_by_name_and_labels() -> None:
    registry = CollectorRegistry()
    Counter("hecate_x", "x", ["chore"], registry=registry).labels("warmup").inc(2)
    assert registry.get_sample_value("hecate_x_total", {"chore": "warmup"}) == 2.0
    assert registry.get_sample_value("hecate_x_total", {"chore": "cache"}) is None
    assert registry.get_sample_value("hecate_x", {"chore": "warmup"}) is None  # the sample's name
