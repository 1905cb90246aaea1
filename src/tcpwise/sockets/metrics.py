"""Counters for guard and pool, kept as plain Python numbers and exported to Prometheus on demand.

Theory of operation
-------------------
The hot path (accept, close, borrow) only does ``dict[key] += 1`` — no prometheus-client call, and
prometheus-client is not even imported until :meth:`Metrics.register_prometheus` is called. That method
registers a *collector* that reads the numbers at scrape time (the prometheus-client "custom collector"
pattern), so a server that never exposes metrics pays nothing and one that does pays only per scrape.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Metrics"]


@dataclass
class Metrics:
    """Named counters (optionally with one label) and gauges read through callables.

    Args:
        namespace: metric name prefix, e.g. ``tcpwise_guard``.
    """

    namespace: str
    counters: dict[str, Counter[str]] = field(default_factory=dict)
    gauges: dict[str, Callable[[], float]] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def counter(self, name: str, help: str, label: str = "") -> Counter[str]:
        """Declare a counter; increment with ``c[label_value] += 1`` (``c[""]`` when unlabelled)."""
        c: Counter[str] = Counter()
        self.counters[name] = c
        self.help[name] = help
        self.labels[name] = label
        return c

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        self.gauges[name] = read
        self.help[name] = help

    def snapshot(self) -> dict[str, Any]:
        """Plain dict of every value: ``{"closes_total": {"idle_timeout": 3}, "active": 5}``."""
        out: dict[str, Any] = {}
        for name, c in self.counters.items():
            out[name] = dict(c) if self.labels[name] else c.get("", 0)
        for name, read in self.gauges.items():
            out[name] = read()
        return out

    def register_prometheus(self, registry: Any = None) -> Any:
        """Expose these metrics through prometheus-client (default registry unless one is given).

        Raises:
            ImportError: prometheus-client is not installed.
        """
        from prometheus_client import REGISTRY
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        metrics = self

        class _Collector:
            def collect(self) -> Iterator[Any]:
                for name, c in metrics.counters.items():
                    full = f"{metrics.namespace}_{name}"
                    label = metrics.labels[name]
                    # CounterMetricFamily appends _total itself.
                    base = full[: -len("_total")] if full.endswith("_total") else full
                    fam = CounterMetricFamily(base, metrics.help[name], labels=[label] if label else None)
                    if label:
                        for value, n in sorted(c.items()):
                            fam.add_metric([value], n)
                    else:
                        fam.add_metric([], c.get("", 0))
                    yield fam
                for name, read in metrics.gauges.items():
                    yield GaugeMetricFamily(f"{metrics.namespace}_{name}", metrics.help[name], value=read())

        collector = _Collector()
        (registry if registry is not None else REGISTRY).register(collector)
        return collector
