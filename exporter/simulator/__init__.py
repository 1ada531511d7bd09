"""A realistic fake GREEN-API on loopback, for the demo, the tests and benchmarks.

It serves ``/waInstance{id}/{method}/{token}`` (and the same under ``/v3``) like the real
API: ``minutes`` and the depth cap are honoured, a wrong token gets 401, an unknown id 403,
and more than one request a second per instance and method gets 429. Traffic is generated
from a seed, so the same seed and clock give the same journal: messages of mixed types
move ``sent`` → ``delivered`` → ``read`` with timestamps that move forward. Most recipients
get a message within seconds; a few per cent have their phone off and get it minutes to
hours later, and a few never do. Generated messages pass through a send queue
(``getMessagesCount``): they leave a moment after being queued, and not at all while the
instance is not authorized (``getStateInstance``), then one a second once it is again.
Deliveries can stall on a schedule: nothing is delivered or read meanwhile, and what was
held is delivered within a minute of the stall's end. Customers answer some read messages
(``lastIncomingMessages``).

Tests drive it in-process through :class:`Simulator`'s knobs (``set_fault``,
``set_messages``, ``set_state``, ``set_outages``, ``set_stalls``, ``burst``...) or, in
another process, through the control API under ``/_sim/`` that ``greenapi-simulator
--help`` lists. The modules, each depending only on those above it:

- :mod:`~exporter.simulator.messages`: one generated message and its journal element;
- :mod:`~exporter.simulator.replies`: customers' replies (lastIncomingMessages);
- :mod:`~exporter.simulator.traffic`: an instance's traffic, send queue, outages, stalls;
- :mod:`~exporter.simulator.bodies`: JSON bodies and parameters, declared once;
- :mod:`~exporter.simulator.faults`: the fault modes, a table;
- :mod:`~exporter.simulator.fleet`: the instances, the demo's profiles, the knobs;
- :mod:`~exporter.simulator.control`: the control API, a route table;
- :mod:`~exporter.simulator.http`: :class:`Simulator`, a fleet served over HTTP;
- :mod:`~exporter.simulator.cli`: ``greenapi-simulator``.
"""

from exporter.simulator.cli import main
from exporter.simulator.control import ROUTES, Route
from exporter.simulator.faults import FAULT_MODES, FAULTS, METHODS, QUOTA_BODY, FaultMode
from exporter.simulator.fleet import DEMO_UNDELIVERED_AFTER, Fleet
from exporter.simulator.http import Simulator
from exporter.simulator.traffic import SimulatedInstance

__all__ = [
    "DEMO_UNDELIVERED_AFTER",
    "FAULTS",
    "FAULT_MODES",
    "METHODS",
    "QUOTA_BODY",
    "ROUTES",
    "FaultMode",
    "Fleet",
    "Route",
    "SimulatedInstance",
    "Simulator",
    "main",
]
