"""The text exposition of ``/metrics``, rendered from per-instance fragments.

With a thousand instances a scrape has some 70,000 samples; formatting them all through
prometheus_client at every scrape takes over a second. An instance's snapshot only changes
when it is polled, so its lines are formatted once per poll (by prometheus_client itself, so
the output is exactly what ``generate_latest`` would give) and a scrape only joins cached
bytes. The formatting happens right after the poll, in the poll's thread (see
:meth:`TextExposition.refresh`), so a scrape only joins cached bytes. The OpenMetrics format
and ``/probe`` take the ordinary path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import generate_latest
from prometheus_client.core import Metric

from exporter.collector import ExporterSnapshot, exporter_families, instance_families
from exporter.poller import InstanceSnapshot

_Fragments = tuple[InstanceSnapshot, tuple[str, ...], list[bytes]]


class _Fixed:
    """A collector over fixed families, for generate_latest."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _blocks(text: bytes) -> list[tuple[bytes, bytes]]:
    """Split an exposition into (HELP and TYPE lines, sample lines) per family."""
    headers: list[bytes] = []
    samples: list[list[bytes]] = []
    # Only real newlines end lines: label values escape theirs. A sample line starts with
    # its metric name, never with '#'.
    for line in text.split(b"\n")[:-1]:
        if line.startswith(b"# HELP "):
            headers.append(line + b"\n")
            samples.append([])
        elif line.startswith(b"# TYPE "):
            headers[-1] += line + b"\n"
        else:
            samples[-1].append(line + b"\n")
    return [(header, b"".join(lines)) for header, lines in zip(headers, samples, strict=True)]


class TextExposition:
    """Renders the per-instance families from cached fragments. Safe for concurrent scrapes:
    the cache is replaced whole, never changed in place."""

    def __init__(self) -> None:
        self._fragments: dict[str, _Fragments] = {}
        self._headers: tuple[tuple[str, ...], list[bytes]] = ((), [])

    def render(self, snapshot: ExporterSnapshot) -> bytes:
        label_names = snapshot.label_names
        headers = self._family_headers(label_names)
        per_family: list[list[bytes]] = [[] for _ in headers]
        fresh: dict[str, _Fragments] = {}
        for instance in snapshot.instances:
            cached = self._fragments.get(instance.name)
            if cached is None or cached[0] is not instance or cached[1] != label_names:
                cached = (instance, label_names, self._format(instance, label_names))
            fresh[instance.name] = cached
            for lines, fragment in zip(per_family, cached[2], strict=True):
                lines.append(fragment)
        self._fragments = fresh  # also forgets instances removed by a reload
        body = [header + b"".join(lines) for header, lines in zip(headers, per_family, strict=True)]
        body.append(generate_latest(_Fixed(exporter_families(snapshot))))
        return b"".join(body)

    def refresh(self, instance: InstanceSnapshot, label_names: tuple[str, ...]) -> None:
        """Format a just-polled instance now, so that the next scrape finds it ready."""
        fragments = (instance, label_names, self._format(instance, label_names))
        self._fragments = {**self._fragments, instance.name: fragments}

    def _family_headers(self, label_names: tuple[str, ...]) -> list[bytes]:
        if self._headers[0] != label_names or not self._headers[1]:
            text = generate_latest(_Fixed(instance_families(label_names, ())))
            self._headers = (label_names, [header for header, _ in _blocks(text)])
        return self._headers[1]

    @staticmethod
    def _format(instance: InstanceSnapshot, label_names: Sequence[str]) -> list[bytes]:
        text = generate_latest(_Fixed(instance_families(tuple(label_names), (instance,))))
        return [samples for _, samples in _blocks(text)]
