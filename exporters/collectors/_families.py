"""Small helpers to build metric families with a fixed label set."""

from __future__ import annotations

from typing import Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from opsctl.secrets import mask


def label_value(value: object) -> str:
    """A label value: text, masked (a secret never reaches a label), None as empty."""
    return "" if value is None else mask(str(value))


class Families:
    """Collects gauges/counters by name so a collector writes `fam.gauge(name, help, labels, values, v)`."""

    def __init__(self, base_labels: dict[str, str] | None = None):
        self.base = dict(base_labels or {})
        self._families: dict[str, Metric] = {}

    def _get(self, cls: type, name: str, doc: str, labels: Sequence[str]) -> Metric:
        fam = self._families.get(name)
        if fam is None:
            fam = self._families[name] = cls(name, doc, labels=[*self.base, *labels])
        return fam

    def gauge(self, name: str, doc: str, labels: dict[str, object] | None = None, value: float = 0.0) -> None:
        labels = labels or {}
        fam = self._get(GaugeMetricFamily, name, doc, list(labels))
        fam.add_metric([*self.base.values(), *(label_value(v) for v in labels.values())], float(value))

    def counter(self, name: str, doc: str, labels: dict[str, object] | None = None, value: float = 0.0) -> None:
        labels = labels or {}
        fam = self._get(CounterMetricFamily, name, doc, list(labels))
        fam.add_metric([*self.base.values(), *(label_value(v) for v in labels.values())], float(value))

    def histogram(self, name: str, doc: str, labels: dict[str, object], buckets: Iterable[tuple[str, float]],
                  sum_value: float) -> None:
        fam = self._get(HistogramMetricFamily, name, doc, list(labels))
        fam.add_metric([*self.base.values(), *(label_value(v) for v in labels.values())], list(buckets), sum_value)

    def ensure_gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> None:
        """Declare a gauge even if it gets no sample (e.g. no instance in any status)."""
        self._get(GaugeMetricFamily, name, doc, list(labels))

    def families(self) -> list[Metric]:
        return [f for f in self._families.values() if f.samples]
