"""Counters, gauges and the Prometheus text format (0.0.4), written here, not imported.

Why not prometheus_client: importing it imports its push-gateway client and its own HTTP
servers too (`http.server`, `urllib.request`, `wsgiref`, `gzip`, `ssl`), none of which Hecate
uses (waitress serves `/metrics`, see hecate.adapters.http_server). Measured on the idle daemon:
3.3 MB of
its 38 MB budget (docs/benchmarks.md, "The daemon's idle RSS"). What Hecate needs is small:
labelled counters and gauges, collectors that compute their series at scrape time, and the text
format. The names and behaviour follow prometheus_client's (a counter `x` is exported as
`x_total`; `.labels(...)` makes a child on first use), so the series are unchanged, except that
counters no longer carry a `_created` twin. The format is checked against prometheus_client's
own parser and `promtool check metrics` in the tests.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

MetricType = Literal["counter", "gauge"]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Family:
    """One metric family at one scrape: its name, help, type and samples."""

    name: str
    documentation: str
    type: MetricType
    labels: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        if len(labels) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.labels)} label values expected")
        self.samples.append((tuple(labels), float(value)))


def _family_name(name: str, kind: MetricType) -> str:
    # like prometheus_client: a counter's own name carries no `_total`, its sample does
    return name.removesuffix("_total") if kind == "counter" else name


def CounterMetricFamily(  # noqa: N802 - reads as the class it builds, as in prometheus_client
    name: str, documentation: str, labels: Sequence[str] = (), value: float | None = None
) -> Family:
    family = Family(_family_name(name, "counter"), documentation, "counter", tuple(labels))
    if value is not None:
        family.add_metric([], value)
    return family


def GaugeMetricFamily(  # noqa: N802 - reads as the class it builds, as in prometheus_client
    name: str, documentation: str, labels: Sequence[str] = (), value: float | None = None
) -> Family:
    family = Family(name, documentation, "gauge", tuple(labels))
    if value is not None:
        family.add_metric([], value)
    return family


class Collector(Protocol):
    def collect(self) -> Iterable[Family]: ...


class CollectorRegistry:
    """The collectors one /metrics serves, in the order they were registered."""

    def __init__(self) -> None:
        self._collectors: list[Collector] = []
        self._lock = threading.Lock()

    def register(self, collector: Collector) -> None:
        with self._lock:
            self._collectors.append(collector)

    def collect(self) -> Iterator[Family]:
        with self._lock:
            collectors = list(self._collectors)
        for collector in collectors:
            yield from collector.collect()

    def get_sample_value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The value of one exported sample (`x_total` for a counter), or None: for tests and
        checks, as prometheus_client's registry offers."""
        wanted = labels or {}
        for family in self.collect():
            sample_name = family.name + "_total" if family.type == "counter" else family.name
            if sample_name != name:
                continue
            for values, value in family.samples:
                if dict(zip(family.labels, values, strict=True)) == wanted:
                    return value
        return None


class _Value:
    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        with self._lock:
            self.value += amount

    def set(self, value: float) -> None:
        with self._lock:
            self.value = float(value)


class _Metric:
    """A counter or gauge, with label names (children per label values) or without."""

    kind: MetricType

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.name = _family_name(name, self.kind)
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()
        self._children: dict[tuple[str, ...], _Value] = {}
        if not self.labelnames:
            self._children[()] = _Value(self._lock)
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> _Value:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: label values for {self.labelnames} expected")
        key = tuple(str(value) for value in values)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = _Value(self._lock)
        return child

    def clear(self) -> None:
        with self._lock:
            self._children.clear()

    def _single(self) -> _Value:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels: use .labels(...)")
        return self._children[()]

    def collect(self) -> Iterable[Family]:
        family = Family(self.name, self.documentation, self.kind, self.labelnames)
        with self._lock:
            family.samples = [(key, child.value) for key, child in self._children.items()]
        return [family]


class Counter(_Metric):
    kind: MetricType = "counter"

    def inc(self, amount: float = 1.0) -> None:
        self._single().inc(amount)


class Gauge(_Metric):
    kind: MetricType = "gauge"

    def set(self, value: float) -> None:
        self._single().set(value)

    def inc(self, amount: float = 1.0) -> None:
        child = self._single()
        child.set(child.value + amount)


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it (Go's float formatting for the special values)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def render_text(registry: CollectorRegistry) -> bytes:
    """Every family of the registry in the text exposition format 0.0.4."""
    out: list[str] = []
    for family in registry.collect():
        name = family.name + "_total" if family.type == "counter" else family.name
        out.append(f"# HELP {name} {_escape_help(family.documentation)}\n")
        out.append(f"# TYPE {name} {family.type}\n")
        for values, value in family.samples:
            # label names in sorted order, as prometheus_client writes them
            pairs = ",".join(
                f'{label}="{_escape_label(text)}"'
                for label, text in sorted(zip(family.labels, values, strict=True))
            )
            labels = "{" + pairs + "}" if pairs else ""
            out.append(f"{name}{labels} {format_value(value)}\n")
    return "".join(out).encode()


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def make_wsgi_app(registry: CollectorRegistry) -> WsgiApp:
    """The /metrics application: GET or HEAD on any path (but /favicon.ico) gets the text."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if environ.get("PATH_INFO") == "/favicon.ico":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        body = render_text(registry)
        start_response(
            "200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))]
        )
        return [b""] if method == "HEAD" else [body]

    return app
