"""The Kubernetes calls load shedding makes (issue 28): the workloads a label selector
matches, with their labels and pod priority; the PriorityClasses; the HorizontalPodAutoscalers.
A mixin of hecate.adapters.kube.client.Kube (one client, one error mapping)."""

from __future__ import annotations

import contextlib
from typing import Any

from lightkube import Client, operators
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
from lightkube.resources.scheduling_v1 import PriorityClass

from hecate.core.shed_plan import Autoscaler, Candidate, PriorityClassInfo

Selector = list[tuple[str, Any]]


def parse_selector(text: str) -> Selector:
    """A checked equality-based selector (hecate.config.feeds.parse_label_selector) as
    lightkube's pairs: `k=v`/`k==v`, `k!=v`, `k`, `!k`."""
    pairs: Selector = []
    for term in (t.strip() for t in text.split(",") if t.strip()):
        if "!=" in term:
            key, value = term.split("!=", 1)
            pairs.append((key.strip(), operators.not_equal(value.strip())))
        elif "=" in term:
            key, value = term.split("=", 1)
            pairs.append((key.strip(), value.lstrip("=").strip()))
        elif term.startswith("!"):
            pairs.append((term[1:], operators.not_exists()))
        else:
            pairs.append((term, operators.exists()))
    return pairs


class ShedCalls:
    _client: Client

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError  # Kube's

    def shed_candidates(self, selector: str) -> list[Candidate]:
        """Every Deployment and StatefulSet (all namespaces) the selector matches."""
        # lightkube takes a list of pairs as well as a dict (one key may have two terms)
        labels: Any = parse_selector(selector)
        with self._errors(f"list deployments matching {selector}"):
            deployments = list(self._client.list(Deployment, namespace="*", labels=labels))
        with self._errors(f"list statefulsets matching {selector}"):
            statefulsets = list(self._client.list(StatefulSet, namespace="*", labels=labels))
        return [
            *(_candidate("deployment", obj) for obj in deployments),
            *(_candidate("statefulset", obj) for obj in statefulsets),
        ]

    def priority_classes(self) -> list[PriorityClassInfo]:
        with self._errors("list priorityclasses"):
            found = list(self._client.list(PriorityClass))
        return [
            PriorityClassInfo(
                (pc.metadata.name if pc.metadata else None) or "?",
                int(pc.value or 0),
                bool(pc.globalDefault),
            )
            for pc in found
        ]

    def autoscalers(self) -> list[Autoscaler]:
        with self._errors("list horizontalpodautoscalers"):
            found = list(self._client.list(HorizontalPodAutoscaler, namespace="*"))
        result = []
        for hpa in found:
            meta, ref = hpa.metadata, hpa.spec.scaleTargetRef
            ns = (meta.namespace if meta else None) or "default"
            name = (meta.name if meta else None) or "?"
            result.append(Autoscaler(ns, name, ref.kind, ref.name))
        return result


def _candidate(kind: str, obj: Deployment | StatefulSet) -> Candidate:
    meta, spec = obj.metadata, obj.spec
    pod = spec.template.spec if spec and spec.template else None
    return Candidate(
        kind=kind,
        namespace=(meta.namespace if meta else None) or "default",
        name=(meta.name if meta else None) or "?",
        replicas=spec.replicas if spec and spec.replicas is not None else 1,
        labels=tuple(sorted((meta.labels or {}).items())) if meta else (),
        priority_class=pod.priorityClassName if pod else None,
        priority=pod.priority if pod else None,
    )
