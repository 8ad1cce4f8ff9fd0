"""opsctl: operations and diagnostics toolkit for OpenStack clouds."""

__version__ = "0.1.0"
