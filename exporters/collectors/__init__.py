"""Built-in collectors of the Prometheus exporter, registered under the `opsctl.exporters` entry points.

Each module exposes `sources(ctx: ExporterContext) -> list[Source]`.
"""
