"""Prometheus exporter for GREEN-API's outgoing message journal."""

__version__ = "0.1.0"
