"""Exporters: Prometheus (/metrics) and Elasticsearch (log events and check results)."""
