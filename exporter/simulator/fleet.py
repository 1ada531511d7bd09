"""The simulated instances, the demo's four profiles, and the knobs tests turn.

A :class:`Fleet` makes its instances from a seed (ids, tokens, chats and traffic follow from
it) and changes them under their locks, on its clock: each knob first generates the traffic
up to now under the old settings, then applies the new ones from now on, so the same seed,
clock and knob calls give the same journals. :class:`exporter.simulator.http.Simulator`
is a Fleet served over HTTP; the control API (:mod:`exporter.simulator.control`) calls the
same knobs.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from exporter.simulator.faults import check_fault
from exporter.simulator.traffic import MINUTES_BY, SimulatedInstance

# The configuration that makes the demo's story show within minutes (the exporter's default,
# 5m, would delay every late verdict by three more minutes).
DEMO_UNDELIVERED_AFTER = "2m"

_F = TypeVar("_F", bound="Fleet")


class Fleet:
    """Simulated instances on a clock; ``url`` is where they are (or will be) served.

    Every instance it makes sends ``rate`` messages a second; ``offline_ratio`` of their
    recipients get them minutes to hours late, ``stuck_ratio`` never. ``history`` seconds of
    traffic exist before the clock's present.
    """

    def __init__(
        self,
        instances: int = 3,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        depth: int = 5000,
        rate_limit: bool = True,
        rate: float = 1 / 60,
        history: float = 86400,
        stuck_ratio: float = 0.005,
        clock: Callable[[], float] = time.time,
        first_index: int = 1,
        offline_ratio: float = 0.025,
    ) -> None:
        self.seed = seed
        self.host = host
        self.port = port
        self.depth = depth
        self.rate_limit = rate_limit
        self.clock = clock
        now = clock()
        self.instances: list[SimulatedInstance] = []
        for index in range(first_index, first_index + instances):
            instance = self._make_instance(index, f"sim-{index}", now - history, rate=rate,
                                           stuck_ratio=stuck_ratio, offline_ratio=offline_ratio)  # fmt: skip
            instance.advance(now, depth)
            self.instances.append(instance)

    def _make_instance(self, index: int, name: str, since: float, *, rate: float,
                       stuck_ratio: float, offline_ratio: float, v3: bool = False,
                       id_prefix: str = "1101") -> SimulatedInstance:  # fmt: skip
        rng = random.Random(f"greenapi-simulator:{self.seed}:{index}")
        token = hashlib.sha256(f"token:{self.seed}:{index}".encode()).hexdigest()[:50]
        chats = [f"7900{rng.randint(1000000, 9999999)}@c.us" for _ in range(27)]
        chats += [f"120363{rng.randint(10**11, 10**12 - 1)}@g.us" for _ in range(3)]
        thumbnail = base64.b64encode(rng.randbytes(3 * 1024)).decode()
        instance = SimulatedInstance(
            name=name,
            id_instance=f"{id_prefix}{index:06d}",
            token=token,
            v3=v3,
            rate=rate,
            stuck_ratio=stuck_ratio,
            offline_ratio=offline_ratio,
            rng=rng,
            chats=chats,
            thumbnail=thumbnail,
        )
        instance.next_send = since + (rng.expovariate(rate) if rate > 0 else 0.0)
        return instance

    @classmethod
    def demo(
        cls: type[_F],
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        outage_start_in: float = 30.0,
        outage_duration: float = 600.0,
        outage_period: float = 1800.0,
        stall_start_in: float = 60.0,
        stall_duration: float = 1800.0,
        stall_period: float = 7200.0,
        clock: Callable[[], float] = time.time,
    ) -> _F:
        """The four instances of the demo, each with an hour of healthy history.

        - shop-bot: a healthy bulk sender (0.3 messages a second); 2.2 % of its recipients
          are offline and get their message minutes to hours later, 0.5 % never: about
          97 % are delivered within two minutes.
        - support-bot: loses its authorization ``outage_start_in`` seconds after the
          simulator is made (default 30), stays ``notAuthorized`` for ``outage_duration``
          seconds (default 600) and again every ``outage_period`` seconds (default 1800;
          0 for once only): its send queue grows meanwhile and drains, one message a
          second, once it is authorized again.
        - stuck-bot: healthy traffic (0.2 a second) whose deliveries stall
          ``stall_start_in`` seconds after the simulator is made (default 60), for
          ``stall_duration`` seconds (default 1800) and again every ``stall_period`` seconds
          (default 7200; 0 for once only): what it sends meanwhile stays ``sent``, and is
          delivered within a minute of the stall's end.
        - max-channel: a MAX instance (``/v3``) whose journal says ``statusMessage: ""`` on
          every message, as GREEN-API's own MAX example does.

        Judge deliveries with ``undelivered_after`` :data:`DEMO_UNDELIVERED_AFTER` for the
        story to show within minutes (:meth:`exporter_config` takes it).
        """
        fleet = cls(instances=0, seed=seed, host=host, port=port, clock=clock)
        now = fleet.clock()
        profiles = [
            # name, messages a second, offline recipients, never delivered, MAX, id prefix
            ("shop-bot", 0.3, 0.022, 0.005, False, "1101"),
            ("support-bot", 0.25, 0.02, 0.005, False, "1101"),
            ("stuck-bot", 0.2, 0.02, 0.005, False, "1101"),
            ("max-channel", 0.2, 0.02, 0.005, True, "3100"),
        ]
        for index, (name, rate, offline, stuck, v3, prefix) in enumerate(profiles, start=1):
            instance = fleet._make_instance(index, name, now - 3600, rate=rate,
                                            stuck_ratio=stuck, offline_ratio=offline,
                                            v3=v3, id_prefix=prefix)  # fmt: skip
            if name == "support-bot":
                instance.outage_start = now + outage_start_in
                instance.outage_duration = outage_duration
                instance.outage_period = outage_period
            if name == "stuck-bot":
                instance.stall_start = now + stall_start_in
                instance.stall_duration = stall_duration
                instance.stall_period = stall_period
            if name == "max-channel":  # like the MAX journal in GREEN-API's documentation
                instance.statuses = False
            instance.advance(now, fleet.depth)
            fleet.instances.append(instance)
        return fleet

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def api_url(self, instance: SimulatedInstance) -> str:
        """The ``api_url`` an exporter polls ``instance`` at (MAX instances: under /v3)."""
        return self.url + ("/v3" if instance.v3 else "")

    def instance(self, id_or_name: str) -> SimulatedInstance:
        for instance in self.instances:
            if id_or_name in (instance.name, instance.id_instance):
                return instance
        raise KeyError(f"no simulated instance {id_or_name!r}")

    def exporter_config(
        self, *, undelivered_after: str | float | None = None, **defaults: object
    ) -> dict[str, Any]:
        """An exporter configuration for these instances, with ``defaults`` for all of them.

        ``undelivered_after`` (a duration such as ``"2m"``) is one of the defaults, named
        because the demo's story depends on it.
        """
        if undelivered_after is not None:
            defaults["undelivered_after"] = undelivered_after
        document: dict[str, Any] = {}
        if defaults:
            document["defaults"] = dict(defaults)
        document["instances"] = [
            {"name": i.name, "id_instance": i.id_instance, "api_token": i.token,
             "api_url": self.api_url(i)}
            for i in self.instances
        ]  # fmt: skip
        return document

    # --- what an instance answers --------------------------------------------------------------

    def set_fault(
        self, id_or_name: str, mode: str, /, method: str | None = None, **params: object
    ) -> None:
        """Make requests fail as ``mode`` says: every method's, or only ``method``'s.

        ``params`` are the mode's (:data:`exporter.simulator.faults.FAULTS`); a ValueError
        names what is unknown or of the wrong kind.
        """
        checked = check_fault(mode, method, params)
        instance = self.instance(id_or_name)
        with instance.lock:
            instance.fault = (mode, checked, method)

    def clear_fault(self, id_or_name: str) -> None:
        instance = self.instance(id_or_name)
        with instance.lock:
            instance.fault = None

    def set_messages(self, id_or_name: str, elements: list[Any] | None) -> None:
        """Serve exactly ``elements`` (within ``minutes``) as the journal; None: the
        generated journal again."""
        instance = self.instance(id_or_name)
        with instance.lock:
            instance.scripted = None if elements is None else list(elements)

    def set_incoming(self, id_or_name: str, elements: list[Any] | None) -> None:
        """Serve exactly ``elements`` (within ``minutes``) from lastIncomingMessages; None:
        the generated replies again."""
        instance = self.instance(id_or_name)
        with instance.lock:
            instance.scripted_incoming = None if elements is None else list(elements)

    def set_statuses(self, id_or_name: str, enabled: bool) -> None:
        """With ``enabled`` False, every journal element says ``statusMessage: ""``."""
        instance = self.instance(id_or_name)
        with instance.lock:
            instance.statuses = enabled

    def set_minutes_by(self, id_or_name: str, basis: str) -> None:
        """What ``?minutes=`` of lastOutgoingMessages counts back from: ``last_action`` (the
        time of a message's last action, its ``timestamp``) or ``send_time``."""
        if basis not in MINUTES_BY:
            raise ValueError(f"minutes_by: expected one of {', '.join(MINUTES_BY)}, got {basis!r}")
        instance = self.instance(id_or_name)
        with instance.lock:
            instance.minutes_by = basis

    def set_queue(self, id_or_name: str, count: int, cyrillic: bool = False) -> None:
        """Add ``count`` to what getMessagesCount answers; ``cyrillic``: spell its key with
        a Cyrillic "\u0441", as some answers do."""
        instance = self.instance(id_or_name)
        with instance.lock:
            instance.queue_count, instance.queue_cyrillic = count, cyrillic

    # --- what happens from now on ----------------------------------------------------------

    def set_state(self, id_or_name: str, state: str | None) -> None:
        """Force a state (None: a ``null`` body); ``authorized`` lets the outages rule again."""
        instance = self.instance(id_or_name)
        now = self.clock()
        with instance.lock:
            instance.advance(now, self.depth)  # what was queued so far, under the old state
            instance.state = state
            instance.replan(now)

    def set_outages(
        self, id_or_name: str, start: float | None, duration: float, period: float | None = None
    ) -> None:
        """Not authorized for ``duration`` s from clock time ``start``, every ``period`` s.

        ``start`` None means never; ``period`` None or 0 means once.
        """
        _check_schedule("outages", start, duration, period)
        instance = self.instance(id_or_name)
        now = self.clock()
        with instance.lock:
            instance.advance(now, self.depth)
            instance.outage_start = None if start is None else float(start)
            instance.outage_duration = float(duration)
            instance.outage_period = None if period is None else float(period)
            instance.replan(now)

    def set_stalls(
        self, id_or_name: str, start: float | None, duration: float, period: float | None = None
    ) -> None:
        """No delivery and no read for ``duration`` s from clock time ``start``, every ``period`` s.

        ``start`` None means never; ``period`` None or 0 means once. It applies to the
        messages already sent as well: what has not been delivered or read by now waits
        for the end of the stall, then happens a few seconds to a minute after it.
        """
        _check_schedule("stalls", start, duration, period)
        instance = self.instance(id_or_name)
        now = self.clock()
        with instance.lock:
            instance.advance(now, self.depth)
            instance.stall_start = None if start is None else float(start)
            instance.stall_duration = float(duration)
            instance.stall_period = None if period is None else float(period)
            instance.replan_deliveries(now)

    def set_rate(self, id_or_name: str, per_second: float) -> None:
        """Generate ``per_second`` messages a second from now on (0: none)."""
        if isinstance(per_second, bool) or not math.isfinite(per_second) or per_second < 0:
            raise ValueError("rate: per_second must be a finite number >= 0")
        instance = self.instance(id_or_name)
        now = self.clock()
        with instance.lock:
            instance.advance(now, self.depth)
            instance.change_rate(float(per_second), now)

    def burst(self, id_or_name: str, count: int) -> None:
        """The bot queues ``count`` messages now: they leave through the send queue, one a
        second, while the instance is authorized."""
        if isinstance(count, bool) or count < 0:
            raise ValueError("burst: count must be a whole number >= 0")
        instance = self.instance(id_or_name)
        now = self.clock()
        with instance.lock:
            instance.advance(now, self.depth)
            instance.enqueue(count, now)

    # --- looking --------------------------------------------------------------------------

    def requests_log(self, id_or_name: str) -> list[dict[str, Any]]:
        instance = self.instance(id_or_name)
        with instance.lock:
            return [dict(entry) for entry in instance.log]

    def summary(self, id_or_name: str) -> dict[str, Any]:
        """The instance now, as the control API shows it: what getStateInstance and
        getMessagesCount answer, the fault, the schedules (``start_in`` from now), the knobs."""
        instance = self.instance(id_or_name)
        now = self.clock()
        with instance.lock:
            fault = None
            if instance.fault is not None:
                mode, params, method = instance.fault
                fault = {"mode": mode, "method": method, **params}
            i = instance
            return {
                "name": i.name,
                "id_instance": i.id_instance,
                "api_url": self.api_url(i),
                "state": i.effective_state(now),
                "queue": i.queue_length(now, self.depth),
                "rate_per_second": i.rate,
                "statuses": i.statuses,
                "minutes_by": i.minutes_by,
                "scripted_messages": i.scripted is not None,
                "scripted_incoming": i.scripted_incoming is not None,
                "fault": fault,
                "outages": _schedule(i.outage_start, i.outage_duration, i.outage_period, now),
                "stalls": _schedule(i.stall_start, i.stall_duration, i.stall_period, now),
            }


def _schedule(
    start: float | None, duration: float, period: float | None, now: float
) -> dict[str, float | None] | None:
    if start is None or duration <= 0:
        return None
    return {"start_in": round(start - now, 3), "duration": duration, "period": period}


def _check_schedule(kind: str, start: float | None, duration: float, period: float | None) -> None:
    for name, number in (("duration", duration), ("period", period), ("start", start)):
        if number is not None and (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not math.isfinite(number)
            or (name != "start" and number < 0)
        ):
            raise ValueError(f"{kind}: {name} must be a finite number of seconds, >= 0")
