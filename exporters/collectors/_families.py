"""Small helpers to build metric families with a fixed label set."""

from __future__ import annotations

from typing import Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from opsctl.secrets import mask


def label_value(value: object) -> str:
    """A label value: text, masked (a secret never reaches a label), None as empty."""
    return "" if value is None else mask(str(value))


class Families:
    """Collects gauges/counters by name so a collector writes `fam.gauge(name, help, labels, value)`.

    A label set given twice keeps the last value: a duplicate series (e.g. two services with the same host
    and binary in two cells) would make Prometheus reject the whole scrape.
    """

    def __init__(self, base_labels: dict[str, str] | None = None):
        self.base = dict(base_labels or {})
        self._families: dict[str, Metric] = {}
        self._values: dict[str, dict[tuple[str, ...], float]] = {}

    def _get(self, cls: type, name: str, doc: str, labels: Sequence[str]) -> Metric:
        fam = self._families.get(name)
        if fam is None:
            fam = self._families[name] = cls(name, doc, labels=[*self.base, *labels])
        return fam

    def _set(self, cls: type, name: str, doc: str, labels: dict[str, object] | None, value: float) -> None:
        labels = labels or {}
        self._get(cls, name, doc, list(labels))
        key = (*self.base.values(), *(label_value(v) for v in labels.values()))
        self._values.setdefault(name, {})[key] = float(value)

    def gauge(self, name: str, doc: str, labels: dict[str, object] | None = None, value: float = 0.0) -> None:
        self._set(GaugeMetricFamily, name, doc, labels, value)

    def counter(self, name: str, doc: str, labels: dict[str, object] | None = None, value: float = 0.0) -> None:
        self._set(CounterMetricFamily, name, doc, labels, value)

    def histogram(self, name: str, doc: str, labels: dict[str, object], buckets: Iterable[tuple[str, float]],
                  sum_value: float) -> None:
        fam = self._get(HistogramMetricFamily, name, doc, list(labels))
        fam.add_metric([*self.base.values(), *(label_value(v) for v in labels.values())], list(buckets), sum_value)

    def ensure_gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> None:
        """Declare a gauge even if it gets no sample (e.g. no instance in any status)."""
        self._get(GaugeMetricFamily, name, doc, list(labels))

    def families(self) -> list[Metric]:
        out = []
        for name, fam in self._families.items():
            for key, value in self._values.pop(name, {}).items():
                fam.add_metric(list(key), value)
            if fam.samples:
                out.append(fam)
        return out
