"""The exposition of ``/metrics``, in both formats, rendered from per-instance fragments.

With a thousand instances a scrape has some 70,000 samples; formatting them all through
prometheus_client at every scrape takes over a second. An instance's snapshot only changes
when it is polled, so its lines are formatted right after the poll, in the poll's thread
(:meth:`Exposition.refresh`), by prometheus_client itself. A scrape joins cached bytes: the
output is exactly what ``generate_latest`` of either format would give for the same
snapshot, whichever format the client asks for (Prometheus asks for OpenMetrics first).

The two formats differ in their metadata lines (a counter's family is ``x_total`` in text and
``x`` in OpenMetrics, which ends with ``# EOF``), not in the sample lines of the families
here. The exporter checks that once, on the first instance it formats, and from then on
formats an instance's samples once for both; should a prometheus_client release ever render
them differently, each format is formatted on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import generate_latest as text_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector

from exporter.collector import ExporterSnapshot, exporter_families, instance_families
from exporter.poller import InstanceSnapshot

TEXT = "text"
OPENMETRICS = "openmetrics"
_EOF = b"# EOF\n"


@dataclass(frozen=True)
class _Format:
    render: Callable[[Collector], bytes]
    trailer: bytes  # what ends a whole exposition and must not end a fragment


_FORMATS: dict[str, _Format] = {
    TEXT: _Format(text_latest, b""),
    OPENMETRICS: _Format(openmetrics_latest, _EOF),
}


def format_of(content_type: str) -> str:
    """The format of a content type chosen by ``prometheus_client.exposition.choose_encoder``."""
    return OPENMETRICS if content_type.startswith("application/openmetrics-text") else TEXT


class _Fixed(Collector):
    """A collector over fixed families, for generate_latest."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def render(families: Iterable[Metric], fmt: str) -> bytes:
    """What prometheus_client renders for ``families``, without the format's trailer."""
    spec = _FORMATS[fmt]
    text = spec.render(_Fixed(families))
    return text[: len(text) - len(spec.trailer)] if spec.trailer else text


def finish(parts: list[bytes], fmt: str) -> bytes:
    """Join the parts of a whole exposition and close it: OpenMetrics ends with ``# EOF``."""
    return b"".join([*parts, _FORMATS[fmt].trailer])


def _blocks(text: bytes) -> list[tuple[bytes, bytes]]:
    """Split an exposition into (metadata lines, sample lines) per family."""
    headers: list[bytes] = []
    samples: list[list[bytes]] = []
    # Only real newlines end lines: label values and help texts escape theirs. A family
    # starts with its HELP line; TYPE and UNIT lines follow it; sample lines never start
    # with '#'.
    for line in text.split(b"\n")[:-1]:
        if line.startswith(b"# HELP "):
            headers.append(line + b"\n")
            samples.append([])
        elif line.startswith((b"# TYPE ", b"# UNIT ")):
            headers[-1] += line + b"\n"
        else:
            samples[-1].append(line + b"\n")
    return [(header, b"".join(lines)) for header, lines in zip(headers, samples, strict=True)]


@dataclass(frozen=True)
class _Fragments:
    """One instance's sample lines per family, in every format, for one snapshot."""

    instance: InstanceSnapshot
    label_names: tuple[str, ...]
    lines: dict[str, list[bytes]]  # format → per-family sample lines


class Exposition:
    """Renders the per-instance families from cached fragments. Safe for concurrent scrapes
    and polls: the caches are replaced whole, never changed in place."""

    def __init__(self) -> None:
        self._fragments: dict[str, _Fragments] = {}
        self._headers: dict[tuple[str, tuple[str, ...]], list[bytes]] = {}
        self.shared_samples: bool | None = None  # do both formats render the same samples?

    def render(self, snapshot: ExporterSnapshot, fmt: str) -> list[bytes]:
        """The instances' and the exporter's own families, without the format's trailer, as
        parts to join (the page is megabytes: it is copied once, by whoever sends it)."""
        label_names = snapshot.label_names
        headers = self._family_headers(label_names, fmt)
        per_family: list[list[bytes]] = [[] for _ in headers]
        fresh: dict[str, _Fragments] = {}
        for instance in snapshot.instances:
            cached = self._fragments.get(instance.name)
            if (
                cached is None
                or cached.instance is not instance
                or cached.label_names != label_names
            ):
                cached = self._format(instance, label_names)
            fresh[instance.name] = cached
            for lines, fragment in zip(per_family, cached.lines[fmt], strict=True):
                lines.append(fragment)
        self._fragments = fresh  # also forgets instances removed by a reload
        body: list[bytes] = []
        for header, lines in zip(headers, per_family, strict=True):
            body.append(header)
            body += lines
        body.append(render(exporter_families(snapshot), fmt))
        return body

    def refresh(self, instance: InstanceSnapshot, label_names: tuple[str, ...]) -> None:
        """Format a just-polled instance now, so that the next scrape finds it ready."""
        fragments = self._format(instance, label_names)
        self._fragments = {**self._fragments, instance.name: fragments}

    def _format(self, instance: InstanceSnapshot, label_names: Sequence[str]) -> _Fragments:
        families = instance_families(tuple(label_names), (instance,))
        text = _samples(render(families, TEXT))
        if self.shared_samples is False:
            openmetrics = _samples(render(families, OPENMETRICS))
        elif self.shared_samples is None:
            openmetrics = _samples(render(families, OPENMETRICS))
            self.shared_samples = openmetrics == text
        else:
            openmetrics = text
        return _Fragments(instance, tuple(label_names), {TEXT: text, OPENMETRICS: openmetrics})

    def _family_headers(self, label_names: tuple[str, ...], fmt: str) -> list[bytes]:
        key = (fmt, label_names)
        headers = self._headers.get(key)
        if headers is None:
            text = render(instance_families(label_names, ()), fmt)
            headers = [header for header, _ in _blocks(text)]
            # Label names change only on reload: keep the latest set per format.
            self._headers = {k: v for k, v in self._headers.items() if k[1] == label_names}
            self._headers[key] = headers
        return headers


def _samples(text: bytes) -> list[bytes]:
    return [samples for _, samples in _blocks(text)]
