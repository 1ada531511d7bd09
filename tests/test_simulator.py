"""The simulator behaves like GREEN-API where the exporter depends on it."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.simulator import (
    DEMO_UNDELIVERED_AFTER,
    FAULT_MODES,
    FAULTS,
    ROUTES,
    Route,
    SimulatedInstance,
    Simulator,
    main,
)
from exporter.simulator.control import ROUTES_IN_ORDER

NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(instances=2, seed=1, rate=1 / 30, history=7200, rate_limit=False)
    simulator.start()
    yield simulator
    simulator.stop()


def journal(sim: Simulator, name: str = "sim-1", **params: str) -> requests.Response:
    instance = sim.instance(name)
    return requests.get(f"{sim.url}/waInstance{instance.id_instance}/lastOutgoingMessages/{instance.token}",
                        params=params, timeout=10)  # fmt: skip


def test_the_journal_has_the_apis_shape(sim: Simulator) -> None:
    elements = journal(sim).json()
    assert len(elements) > 100
    for element in elements:
        assert element["type"] == "outgoing"
        assert isinstance(element["idMessage"], str) and isinstance(element["timestamp"], int)
        assert element["statusMessage"] in {
            "sent",
            "delivered",
            "read",
            "pending",
            "noAccount",
            "yellowCard",
            "",
        }
        assert isinstance(element["sendByApi"], bool) and isinstance(element["isForwarded"], bool)
        assert element["chatId"].endswith(("@c.us", "@g.us"))
    types = {e["typeMessage"] for e in elements}
    assert {"textMessage", "extendedTextMessage", "imageMessage"} <= types
    assert any("jpegThumbnail" in e for e in elements)


def test_newest_messages_come_first(sim: Simulator) -> None:
    instance = sim.instance("sim-1")
    sent = {m.id_message: m.sent_at for m in instance.messages}
    order = [sent[e["idMessage"]] for e in journal(sim).json()]
    assert order == sorted(order, reverse=True)


def test_minutes_limits_the_window(sim: Simulator) -> None:
    assert len(journal(sim, minutes="10").json()) < len(journal(sim, minutes="120").json())


def test_a_non_integer_minutes_is_400(sim: Simulator) -> None:
    assert journal(sim, minutes="ten").status_code == 400


def test_the_depth_caps_the_answer() -> None:
    simulator = Simulator(instances=1, seed=1, rate=1, history=600, depth=50, rate_limit=False)
    simulator.start()
    try:
        assert len(journal(simulator).json()) == 50
    finally:
        simulator.stop()


def test_a_wrong_token_is_401_and_an_unknown_id_403(sim: Simulator) -> None:
    instance = sim.instance("sim-1")
    base = f"{sim.url}/waInstance"
    assert (
        requests.get(
            f"{base}{instance.id_instance}/lastOutgoingMessages/wrong", timeout=5
        ).status_code
        == 401
    )
    assert (
        requests.get(
            f"{base}1999999999/lastOutgoingMessages/{instance.token}", timeout=5
        ).status_code
        == 403
    )


def test_the_v3_prefix_is_served(sim: Simulator) -> None:
    instance = sim.instance("sim-2")
    url = f"{sim.url}/v3/waInstance{instance.id_instance}/lastOutgoingMessages/{instance.token}"
    assert requests.get(url, timeout=5).status_code == 200


def test_more_than_one_request_a_second_is_429() -> None:
    simulator = Simulator(instances=1, seed=1, history=60)
    simulator.start()
    try:
        assert journal(simulator).status_code == 200
        limited = journal(simulator)
        assert limited.status_code == 429 and "Retry-After" not in limited.headers
        time.sleep(1.05)
        assert journal(simulator).status_code == 200
    finally:
        simulator.stop()


def test_the_same_seed_and_clock_give_the_same_journal() -> None:
    first, second = (Simulator(instances=1, seed=9, clock=Clock()) for _ in range(2))
    third = Simulator(instances=1, seed=10, clock=Clock())
    a, b, c = (s.instances[0].journal(NOW, 1440, 5000) for s in (first, second, third))
    assert a == b and a != c
    assert first.instances[0].token == second.instances[0].token != third.instances[0].token


def test_the_same_seed_and_clock_give_the_same_demo_stalls_and_outages_included() -> None:
    clocks = Clock(), Clock()
    first, second = (Simulator.demo(seed=3, clock=clock) for clock in clocks)
    for offset in (0, 100, 1900, 2500, 7300):
        for clock in clocks:
            clock.now = NOW + offset
        for one, other in zip(first.instances, second.instances, strict=True):
            assert one.journal(NOW + offset, 1440, 5000) == other.journal(NOW + offset, 1440, 5000)
            assert one.queued(NOW + offset) == other.queued(NOW + offset)
    third = Simulator.demo(seed=4, clock=Clock())
    assert third.instances[0].journal(NOW, 1440, 5000) != Simulator.demo(
        seed=3, clock=Clock()
    ).instances[0].journal(NOW, 1440, 5000)


def test_statuses_move_forward_and_timestamps_never_back() -> None:
    clock = Clock()
    simulator = Simulator(instances=1, seed=3, rate=1 / 10, history=600, clock=clock)
    instance = simulator.instances[0]
    rank = {"sent": 0, "delivered": 1, "read": 2}
    before = {e["idMessage"]: e for e in instance.journal(clock.now, 1440, 5000)}
    clock.now += 1800
    after = {e["idMessage"]: e for e in instance.journal(clock.now, 1440, 5000)}
    moved = 0
    for key, old in before.items():
        new = after[key]
        assert new["timestamp"] >= old["timestamp"]
        if old["statusMessage"] in rank:
            assert rank[new["statusMessage"]] >= rank[old["statusMessage"]]
            moved += new["statusMessage"] != old["statusMessage"]
    assert moved > 0
    assert len(after) > len(before)  # new messages were sent in the meantime


def test_scripted_messages_are_returned_verbatim_within_minutes(sim: Simulator) -> None:
    now = int(time.time())
    elements = [
        "junk",
        {"idMessage": "a", "timestamp": now},
        {"idMessage": "old", "timestamp": now - 7200},
        None,
    ]
    sim.set_messages("sim-1", elements)
    assert journal(sim, minutes="60").json() == ["junk", {"idMessage": "a", "timestamp": now}, None]


@pytest.mark.parametrize(
    ("mode", "params", "check"),
    [
        ("status", {"code": 502}, lambda r: r.status_code == 502),
        ("status", {"code": 429, "retry_after": "7"}, lambda r: r.headers["Retry-After"] == "7"),
        ("status", {"code": 466}, lambda r: r.json()["invokeStatus"]["status"] == "QUOTE_EXCEEDED"),
        ("broken_json", {}, lambda r: _not_json(r.content)),
        ("truncated_json", {}, lambda r: _not_json(r.content)),
        ("html", {}, lambda r: r.headers["Content-Type"] == "text/html" and b"<html>" in r.content),
        ("not_array", {}, lambda r: isinstance(r.json(), dict)),
        (
            "huge",
            {"megabytes": 3},
            lambda r: len(r.content) >= 3 * 1024 * 1024 and isinstance(r.json(), list),
        ),
        ("large_journal", {"count": 10000}, lambda r: len(r.json()) == 10000),
        ("future_timestamps", {}, lambda r: min(e["timestamp"] for e in r.json()) > 4_000_000_000),
        ("epoch_timestamps", {}, lambda r: max(e["timestamp"] for e in r.json()) < 100_000),
        (
            "duplicate_ids",
            {},
            lambda r: sum(e["idMessage"] == "BAE5DUPLICATE0001" for e in r.json()) == 5,
        ),
        (
            "delay",
            {"seconds": 1},
            lambda r: r.elapsed.total_seconds() >= 1 and r.status_code == 200,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_fault_modes(sim: Simulator, mode: str, params: dict[str, Any], check: object) -> None:
    sim.set_fault("sim-1", mode, **params)
    assert check(journal(sim))  # type: ignore[operator]
    sim.clear_fault("sim-1")
    assert isinstance(journal(sim).json(), list)


def _not_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return True
    return False


def test_hang_never_answers_and_reset_closes_the_connection(sim: Simulator) -> None:
    sim.set_fault("sim-1", "hang")
    with pytest.raises(requests.exceptions.ReadTimeout):
        journal_with_timeout(sim, 1)
    sim.set_fault("sim-1", "reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        journal_with_timeout(sim, 5)


def journal_with_timeout(sim: Simulator, timeout: float) -> requests.Response:
    instance = sim.instance("sim-1")
    return requests.get(f"{sim.url}/waInstance{instance.id_instance}/lastOutgoingMessages/{instance.token}",
                        timeout=timeout)  # fmt: skip


def test_an_unknown_fault_mode_is_refused(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="unknown fault mode"):
        sim.set_fault("sim-1", "gremlins")
    assert "gremlins" not in FAULT_MODES


def test_the_control_api_drives_a_simulator_in_another_process(sim: Simulator) -> None:
    listing = requests.get(sim.url + "/_sim/instances", timeout=5).json()
    assert [i["name"] for i in listing] == ["sim-1", "sim-2"]
    assert requests.put(
        sim.url + "/_sim/instances/sim-2/fault", json={"mode": "status", "code": 503}, timeout=5
    ).ok
    assert journal(sim, "sim-2").status_code == 503
    assert requests.delete(sim.url + "/_sim/instances/sim-2/fault", timeout=5).ok
    assert requests.put(
        sim.url + "/_sim/instances/sim-2/messages", json=[{"idMessage": "x"}], timeout=5
    ).ok
    assert journal(sim, "sim-2").json() == [{"idMessage": "x"}]
    assert (
        requests.put(
            sim.url + "/_sim/instances/sim-2/fault", json={"mode": "nope"}, timeout=5
        ).status_code
        == 400
    )
    assert (
        requests.put(
            sim.url + "/_sim/instances/nobody/fault", json={"mode": "hang"}, timeout=5
        ).status_code
        == 404
    )
    log = requests.get(sim.url + "/_sim/instances/sim-2/requests", timeout=5).json()
    assert len(log) == 2 and log[0]["status"] == 503


def test_the_requests_log_hides_the_token(sim: Simulator) -> None:
    journal(sim, minutes="5")
    [entry] = sim.requests_log("sim-1")
    assert sim.instance("sim-1").token not in json.dumps(entry)
    assert entry["path"].endswith("/lastOutgoingMessages/<token>") and entry["minutes"] == "5"


def test_state_queue_and_incoming_methods(sim: Simulator) -> None:
    instance = sim.instance("sim-1")

    def get(method: str) -> requests.Response:
        return requests.get(
            f"{sim.url}/waInstance{instance.id_instance}/{method}/{instance.token}", timeout=5
        )

    assert get("getStateInstance").json() == {"stateInstance": "authorized"}
    sim.set_state("sim-1", None)
    assert get("getStateInstance").text == "null"
    sim.set_queue("sim-1", 7, cyrillic=True)
    assert get("getMessagesCount").json() == {"\u0441ount": 7}
    incoming = get("lastIncomingMessages").json()
    assert incoming and all(e["type"] == "incoming" and "senderId" in e for e in incoming)


@pytest.mark.process
def test_print_config_gives_a_matching_exporter_configuration() -> None:
    output = subprocess.run(
        [sys.executable, "-m", "exporter.simulator", "--listen", "127.0.0.1:18080", "--instances", "2",
         "--seed", "5", "--print-config"], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    document = yaml.safe_load(output)
    assert [i["id_instance"] for i in document["instances"]] == ["1101000001", "1101000002"]
    assert document["instances"][0]["api_url"] == "http://127.0.0.1:18080"
    assert (
        document["instances"][0]["api_token"] == Simulator(instances=1, seed=5).instances[0].token
    )


@pytest.mark.process
def test_the_command_refuses_a_non_loopback_address_and_a_taken_port() -> None:
    remote = subprocess.run([sys.executable, "-m", "exporter.simulator", "--listen", "0.0.0.0:18081"],
                            capture_output=True, text=True, timeout=10)  # fmt: skip
    assert remote.returncode == 1 and "--allow-remote" in remote.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([sys.executable, "-m", "exporter.simulator", "--listen", f"127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=10)  # fmt: skip
    assert busy.returncode == 2 and "cannot listen" in busy.stderr


# --- incoming messages, per-method faults, authorization outages and the send queue ---------

START = NOW + 60  # the outage the tests below schedule
DURATION = 600
END = START + DURATION


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(clock: Clock) -> Iterator[Simulator]:
    """A simulator on a fake clock, without the rate limit (the clock does not move alone)."""
    simulator = Simulator(instances=1, seed=4, rate=1 / 10, history=600, rate_limit=False,
                          clock=clock)  # fmt: skip
    simulator.start()
    yield simulator
    simulator.stop()


def call(sim: Simulator, method: str, name: str = "sim-1", **params: str) -> requests.Response:
    instance = sim.instance(name)
    return requests.get(f"{sim.url}/waInstance{instance.id_instance}/{method}/{instance.token}",
                        params=params, timeout=5)  # fmt: skip


def state(sim: Simulator) -> object:
    return call(sim, "getStateInstance").json()


def queue(sim: Simulator) -> int:
    count = call(sim, "getMessagesCount").json()["count"]
    assert isinstance(count, int)
    return count


def sent_ids(sim: Simulator) -> set[str]:
    return {e["idMessage"] for e in call(sim, "lastOutgoingMessages").json()}


def generated(sim: Simulator, now: float) -> int:
    """Every message generated by ``now``: those sent plus those still queued."""
    instance = sim.instances[0]
    return len(instance.journal(now, 1440, 5000)) + instance.queued(now)


def held_from(twin: Simulator, start: float, now: float) -> int:
    """What an instance held from ``start`` has queued by ``now``: its twin's queue at
    ``start`` and all it generated since."""
    by_now = generated(twin, now)  # generates what the twin has queued by now
    return twin.instances[0].queued(start) + by_now - generated(twin, start)


def test_scripted_incoming_messages_are_served_within_minutes(timed: Simulator) -> None:
    elements = [
        {"type": "incoming", "idMessage": "new", "timestamp": int(NOW) - 60},
        {"type": "incoming", "idMessage": "old", "timestamp": int(NOW) - 7200},
        "junk",
    ]
    timed.set_incoming("sim-1", elements)
    assert call(timed, "lastIncomingMessages", minutes="60").json() == [elements[0], "junk"]
    assert call(timed, "lastIncomingMessages").json() == elements


def test_the_control_api_scripts_incoming_messages(timed: Simulator) -> None:
    url = timed.url + "/_sim/instances/1101000001/incoming"
    assert requests.put(url, json=[{"idMessage": "x"}], timeout=5).json() == {"ok": True}
    assert call(timed, "lastIncomingMessages").json() == [{"idMessage": "x"}]
    assert requests.put(url, json={"idMessage": "x"}, timeout=5).status_code == 400


def test_replies_are_stable_and_of_mixed_realistic_types(timed: Simulator, clock: Clock) -> None:
    clock.now += 3600
    first = call(timed, "lastIncomingMessages").json()
    assert call(timed, "lastIncomingMessages").json() == first
    clock.now += 600
    later = {e["idMessage"]: e for e in call(timed, "lastIncomingMessages").json()}
    assert all(later[e["idMessage"]] == e for e in first)  # same id and timestamp every time
    types = [e["typeMessage"] for e in later.values()]
    assert max(set(types), key=types.count) == "textMessage"
    assert len(set(types) - {"textMessage"}) >= 3
    assert set(types) <= {"textMessage", "extendedTextMessage", "imageMessage", "audioMessage",
                          "reactionMessage"}  # fmt: skip
    for element in later.values():
        assert element["type"] == "incoming"
        assert element["senderId"].endswith("@c.us") and element["senderName"]
        assert element["chatId"].endswith(("@c.us", "@g.us"))
    timestamps = [e["timestamp"] for e in later.values()]
    assert timestamps == sorted(timestamps, reverse=True)


def test_a_fault_limited_to_get_state_instance_leaves_the_journal_answering(
    timed: Simulator,
) -> None:
    timed.set_fault("sim-1", "status", method="getStateInstance", code=502)
    assert call(timed, "getStateInstance").status_code == 502
    assert call(timed, "lastOutgoingMessages").status_code == 200
    assert call(timed, "getMessagesCount").json() == {"count": queue(timed)}


def test_the_control_api_limits_a_fault_to_one_method(timed: Simulator) -> None:
    body = {"mode": "not_array", "method": "lastIncomingMessages"}
    assert requests.put(timed.url + "/_sim/instances/sim-1/fault", json=body, timeout=5).ok
    assert call(timed, "lastIncomingMessages").json() == {"message": "unexpected"}
    assert isinstance(call(timed, "lastOutgoingMessages").json(), list)


def test_an_unknown_fault_method_is_refused_with_400(timed: Simulator) -> None:
    with pytest.raises(ValueError, match="unknown method 'sendMessage'"):
        timed.set_fault("sim-1", "status", method="sendMessage")
    body = {"mode": "status", "method": "sendMessage"}
    answer = requests.put(timed.url + "/_sim/instances/sim-1/fault", json=body, timeout=5)
    assert answer.status_code == 400 and "sendMessage" in answer.json()["error"]
    assert call(timed, "getStateInstance").status_code == 200


def test_the_state_is_not_authorized_during_a_scheduled_outage_and_back_after_it(
    timed: Simulator, clock: Clock
) -> None:
    timed.set_outages("sim-1", START, DURATION, period=1800)
    expected = {
        START - 1: "authorized",
        START: "notAuthorized",
        END - 1: "notAuthorized",
        END: "authorized",
        START + 1800: "notAuthorized",
        END + 1800: "authorized",
    }
    for at, wanted in expected.items():
        clock.now = at
        assert state(timed) == {"stateInstance": wanted}, at


def test_the_control_api_schedules_outages(timed: Simulator, clock: Clock) -> None:
    url = timed.url + "/_sim/instances/sim-1/outages"
    assert requests.put(url, json={"start_in": 10, "duration": 20, "period": 60}, timeout=5).ok
    for offset, wanted in ((9, "authorized"), (10, "notAuthorized"), (30, "authorized"),
                           (70, "notAuthorized")):  # fmt: skip
        clock.now = NOW + offset
        assert state(timed) == {"stateInstance": wanted}, offset
    assert requests.put(url, json={"start_in": None, "duration": 0}, timeout=5).ok
    assert state(timed) == {"stateInstance": "authorized"}
    assert requests.put(url, json={"start_in": "soon", "duration": 5}, timeout=5).status_code == 400


def test_no_outgoing_message_is_sent_while_not_authorized(timed: Simulator, clock: Clock) -> None:
    timed.set_outages("sim-1", START, DURATION)
    clock.now = START
    before = sent_ids(timed)
    for at in range(int(START), int(END), 60):
        clock.now = at
        assert sent_ids(timed) == before, at
    clock.now = END - 0.001
    assert sent_ids(timed) == before


def test_the_queue_grows_by_exactly_the_messages_generated_during_an_outage(
    clock: Clock,
) -> None:
    outage, twin = (Simulator(instances=1, seed=4, rate=1 / 10, history=600, rate_limit=False,
                              clock=clock) for _ in range(2))  # fmt: skip
    outage.set_outages("sim-1", START, DURATION)
    outage.start()
    try:
        clock.now = START
        at_start = queue(outage)
        clock.now = END - 0.001
        during = generated(twin, END - 0.001) - generated(twin, START)
        assert during > 30  # ten minutes of one message every ten seconds
        assert queue(outage) == at_start + during
    finally:
        outage.stop()


def test_the_queue_drains_one_a_second_after_reauthorization(
    timed: Simulator, clock: Clock
) -> None:
    twin = Simulator(instances=1, seed=4, rate=1 / 10, history=600, clock=clock)
    timed.set_outages("sim-1", START, DURATION)
    clock.now = END - 0.001
    held, before = queue(timed), sent_ids(timed)
    assert held == held_from(twin, START, END - 0.001)
    clock.now = END + 0.5  # the first one left at END
    assert len(sent_ids(timed) - before) == 1
    clock.now = END + 9.5
    assert len(sent_ids(timed) - before) == 10
    assert queue(timed) == held - 10 + generated(twin, END + 9.5) - generated(twin, END - 0.001)
    clock.now = END + 2 * held  # drained: everything generated has been sent
    twin_journal = twin.instances[0].journal(clock.now, 1440, 5000)
    assert queue(timed) == twin.instances[0].queued(clock.now)
    assert sent_ids(timed) == {e["idMessage"] for e in twin_journal}


def test_an_explicit_state_overrides_the_outage_schedule(timed: Simulator, clock: Clock) -> None:
    timed.set_outages("sim-1", START, DURATION)
    timed.set_state("sim-1", "blocked")
    assert state(timed) == {"stateInstance": "blocked"}
    clock.now = END + 60
    assert state(timed) == {"stateInstance": "blocked"}
    timed.set_state("sim-1", "authorized")  # back to the schedule
    assert state(timed) == {"stateInstance": "authorized"}
    clock.now = START + 1
    assert state(timed) == {"stateInstance": "notAuthorized"}


def test_messages_held_by_an_explicit_state_leave_once_it_is_authorized(
    timed: Simulator, clock: Clock
) -> None:
    twin = Simulator(instances=1, seed=4, rate=1 / 10, history=600, clock=clock)
    timed.set_state("sim-1", "yellowCard")
    before = sent_ids(timed)
    clock.now = NOW + 300
    held = queue(timed)
    assert sent_ids(timed) == before and held == held_from(twin, NOW, NOW + 300)
    timed.set_state("sim-1", "authorized")
    clock.now = NOW + 300 + 4.5  # one a second from the moment it was authorized
    assert len(sent_ids(timed) - before) == 5


def test_a_scripted_or_silent_instance_shows_exactly_the_queue_knob(clock: Clock) -> None:
    simulator = Simulator(instances=2, seed=4, rate=0, rate_limit=False, clock=clock)
    simulator.set_messages("sim-1", [])
    simulator.set_queue("sim-1", 3)
    simulator.set_queue("sim-2", 4)
    simulator.start()
    try:
        assert call(simulator, "getMessagesCount", "sim-1").json() == {"count": 3}
        assert call(simulator, "getMessagesCount", "sim-2").json() == {"count": 4}
    finally:
        simulator.stop()


def test_a_healthy_instance_shows_a_small_queue_now_and_then(clock: Clock) -> None:
    def counts() -> list[int]:
        instance = Simulator(instances=1, seed=4, rate=0.3, history=600, clock=clock).instances[0]
        seen = []
        for at in range(int(NOW), int(NOW) + 2000, 5):
            instance.advance(at, 5000)
            seen.append(instance.queued(at))
        return seen

    seen = counts()
    assert seen.count(0) > len(seen) / 2
    assert seen.count(1) + seen.count(2) > 0 and max(seen) <= 4
    assert counts() == seen  # the same seed and clock give the same queue


def test_the_queue_count_can_use_the_cyrillic_key(timed: Simulator) -> None:
    timed.set_messages("sim-1", [])
    timed.set_queue("sim-1", 7, cyrillic=True)
    assert call(timed, "getMessagesCount").json() == {"\u0441ount": 7}


def test_a_null_state_gives_a_null_body(timed: Simulator) -> None:
    timed.set_state("sim-1", None)
    answer = call(timed, "getStateInstance")
    assert answer.status_code == 200 and answer.text == "null"


def test_the_demo_support_bot_follows_the_default_outage_schedule(clock: Clock) -> None:
    demo = Simulator.demo(clock=clock)
    support = demo.instance("support-bot")
    expected = {NOW + 29: "authorized", NOW + 30: "notAuthorized", NOW + 629: "notAuthorized",
                NOW + 630: "authorized", NOW + 1829: "authorized", NOW + 1830: "notAuthorized",
                NOW + 2430: "authorized"}  # fmt: skip
    for at, wanted in expected.items():
        assert support.effective_state(at) == wanted, at - NOW
        others = {i.effective_state(at) for i in demo.instances if i is not support}
        assert others == {"authorized"}
    for at in (NOW + 629, NOW + 1000):
        support.advance(at, demo.depth)
    assert support.queued(NOW + 629) > 100
    assert support.queued(NOW + 1000) <= 4


# --- offline recipients, delivery stalls, journals without statuses, the demo ----------------

IN_TIME = 120  # the demo judges deliveries two minutes after sending
DELIVERED = ("delivered", "read")


def judge(instance: SimulatedInstance, clock: Clock, until: float, every: float = 10) -> dict[str, tuple[str, int]]:  # fmt: skip
    """Poll the journal like the exporter does, and note each new message's status and
    timestamp at the first poll at least IN_TIME after it first showed up."""
    first_seen: dict[str, float] = {}
    verdicts: dict[str, tuple[str, int]] = {}
    while clock.now < until:
        for element in instance.journal(clock.now, 5, 100_000):
            key = element["idMessage"]
            seen = first_seen.setdefault(key, clock.now)
            if key not in verdicts and clock.now - seen >= IN_TIME:
                verdicts[key] = (element["statusMessage"], element["timestamp"])
        clock.now += every
    return verdicts


def actions_between(elements: list[dict[str, Any]], start: float, end: float) -> int:
    """Elements whose last action is a delivery or a read between ``start`` and ``end``."""
    return sum(e["statusMessage"] in DELIVERED and start <= e["timestamp"] < end for e in elements)


def by_id(elements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["idMessage"]: e for e in elements}


def test_offline_recipients_are_the_configured_share_and_get_their_messages_later(
    clock: Clock,
) -> None:
    simulator = Simulator(instances=1, seed=5, rate=0.2, history=0, depth=100_000, clock=clock,
                          offline_ratio=0.05, stuck_ratio=0.01)  # fmt: skip
    instance = simulator.instances[0]
    verdicts = judge(instance, clock, NOW + 3 * 3600)
    late = {key: sent for key, (status, sent) in verdicts.items() if status == "sent"}
    assert 0.045 < len(late) / len(verdicts) < 0.075  # 5 % offline and 1 % never, of ~2,200
    clock.now += 86400  # a day later
    final = by_id(instance.journal(clock.now, 2 * 1440, 100_000))
    delivered = [key for key in late if final[key]["statusMessage"] in DELIVERED]
    assert all(final[key]["timestamp"] >= late[key] + IN_TIME for key in delivered)
    assert any(final[key]["timestamp"] - late[key] > 3600 for key in delivered)  # hours later
    never = len(late) - len(delivered)
    assert 0 < never < len(late) / 3


def test_the_demo_shop_bot_delivers_about_97_per_cent_within_two_minutes(clock: Clock) -> None:
    verdicts = judge(Simulator.demo(clock=clock).instance("shop-bot"), clock, NOW + 2 * 3600)
    statuses = [status for status, _ in verdicts.values()]
    assert len(statuses) > 2000  # 0.3 messages a second
    assert 0.015 < statuses.count("sent") / len(statuses) < 0.04  # offline or never
    in_time = sum(status in DELIVERED for status in statuses) / len(statuses)
    assert in_time > 0.96


def test_messages_sent_during_a_stall_stay_sent_until_its_end_then_are_delivered(
    clock: Clock,
) -> None:
    simulator = Simulator(instances=1, seed=4, rate=0.2, history=600, clock=clock,
                          offline_ratio=0, stuck_ratio=0)  # fmt: skip
    instance = simulator.instances[0]
    simulator.set_stalls("sim-1", START, DURATION)
    clock.now = END - 0.001
    during = instance.journal(clock.now, 1440, 5000)
    assert actions_between(during, START, END) == 0
    held = {e["idMessage"]: e["timestamp"] for e in during
            if e["statusMessage"] == "sent" and e["timestamp"] >= START}  # fmt: skip
    assert len(held) > 100  # ten minutes of one message every five seconds
    clock.now = END + 60
    after = by_id(instance.journal(clock.now, 1440, 5000))
    for key, sent in held.items():
        assert after[key]["statusMessage"] in DELIVERED, key
        assert END <= after[key]["timestamp"] <= END + 60 and after[key]["timestamp"] > sent


def test_the_stall_schedule_repeats_with_its_period(clock: Clock) -> None:
    simulator = Simulator(instances=1, seed=4, rate=0.2, history=600, clock=clock)
    instance = simulator.instances[0]
    simulator.set_stalls("sim-1", START, DURATION, period=1800)
    for repeat in range(3):
        start, end = START + repeat * 1800, END + repeat * 1800
        clock.now = start - 0.001  # between stalls, messages are delivered and read
        assert actions_between(instance.journal(clock.now, 1440, 5000), start - 600, start) > 50
        clock.now = end - 0.001
        assert actions_between(instance.journal(clock.now, 1440, 5000), start, end) == 0, repeat


def test_a_stall_started_through_the_control_api_holds_messages_already_sent(
    clock: Clock,
) -> None:
    stalled, twin = (Simulator(instances=1, seed=4, rate=0.2, history=3600, rate_limit=False,
                               clock=clock, offline_ratio=0.3) for _ in range(2))  # fmt: skip
    stalled.start()
    try:
        waiting = {e["idMessage"] for e in call(stalled, "lastOutgoingMessages").json()
                   if e["statusMessage"] == "sent"}  # fmt: skip
        url = stalled.url + "/_sim/instances/sim-1/stalls"
        assert requests.put(url, json={"start_in": 0, "duration": 600}, timeout=5).ok
        clock.now = NOW + 300
        elsewhere = by_id(twin.instances[0].journal(clock.now, 1440, 5000))
        released = {key for key in waiting if elsewhere[key]["statusMessage"] in DELIVERED}
        assert released  # without the stall, some of them would have been delivered by now
        now = by_id(call(stalled, "lastOutgoingMessages").json())
        assert all(now[key]["statusMessage"] == "sent" for key in released)
        assert actions_between(list(now.values()), NOW, NOW + 300) == 0
        clock.now = NOW + 660
        later = by_id(call(stalled, "lastOutgoingMessages").json())
        assert all(later[key]["statusMessage"] in DELIVERED for key in released)
        assert (
            requests.put(url, json={"start_in": "now", "duration": 5}, timeout=5).status_code == 400
        )
    finally:
        stalled.stop()


def test_changing_the_stall_schedule_never_takes_a_status_back(clock: Clock) -> None:
    simulator = Simulator(instances=1, seed=6, rate=0.2, history=600, clock=clock,
                          offline_ratio=0, stuck_ratio=0)  # fmt: skip
    instance = simulator.instances[0]
    rank = {"sent": 0, "delivered": 1, "read": 2}  # pending, noAccount... never change
    seen: dict[str, dict[str, Any]] = {}
    changes = {NOW + 30: (NOW + 60, 600.0, None),  # a stall from NOW + 60...
               NOW + 300: (None, 0.0, None),  # ...called off half-way
               NOW + 600: (NOW + 600, 120.0, 300.0)}  # fmt: skip
    held: set[str] = set()
    for at in range(int(NOW), int(NOW) + 1800, 15):
        clock.now = at
        if at in changes:
            simulator.set_stalls("sim-1", *changes[at])
        if at == NOW + 300:
            held = {key for key, e in seen.items() if e["statusMessage"] == "sent"}
        if at == NOW + 375:  # what the called-off stall held goes soon after, never before
            released = [by_id(instance.journal(at, 1440, 5000))[key] for key in held]
            assert actions_between(released, NOW + 300, at + 1) == len(held)
        for element in instance.journal(at, 1440, 5000):
            before = seen.get(element["idMessage"])
            if before is not None:
                assert element["timestamp"] >= before["timestamp"]
                status, earlier = element["statusMessage"], before["statusMessage"]
                assert rank[status] >= rank[earlier] if earlier in rank else status == earlier
            seen[element["idMessage"]] = element
    assert len(held) > 30
    with pytest.raises(ValueError, match="stalls: duration"):
        simulator.set_stalls("sim-1", NOW, -5)


def test_a_journal_without_statuses_has_an_empty_status_on_every_element(
    timed: Simulator,
) -> None:
    url = timed.url + "/_sim/instances/sim-1/statuses"
    assert requests.put(url, json={"enabled": False}, timeout=5).ok
    elements = call(timed, "lastOutgoingMessages").json()
    assert len(elements) > 30 and {e["statusMessage"] for e in elements} == {""}
    assert requests.put(url, json={"enabled": True}, timeout=5).ok
    assert {"sent", "delivered", "read"} <= {
        e["statusMessage"] for e in call(timed, "lastOutgoingMessages").json()
    }
    assert requests.put(url, json={"enabled": "no"}, timeout=5).status_code == 400


def test_the_demo_has_four_instances_with_an_hour_of_history(clock: Clock) -> None:
    demo = Simulator.demo(clock=clock)
    assert [(i.name, i.id_instance, i.v3) for i in demo.instances] == [
        ("shop-bot", "1101000001", False),
        ("support-bot", "1101000002", False),
        ("stuck-bot", "1101000003", False),
        ("max-channel", "3100000004", True),
    ]
    for instance in demo.instances:
        elements = instance.journal(NOW, 1440, 5000)
        assert len(elements) > instance.rate * 3600 * 0.8, instance.name
        assert min(e["timestamp"] for e in elements) < NOW - 3300, instance.name
        if instance.statuses:  # healthy: few are still sent ten minutes on
            older = [e for e in elements if e["timestamp"] < NOW - 600]
            assert sum(e["statusMessage"] == "sent" for e in older) < 0.05 * len(older)
    assert demo.exporter_config()["instances"][3]["api_url"] == demo.url + "/v3"


def test_the_demo_max_channel_journal_has_no_statuses(clock: Clock) -> None:
    demo = Simulator.demo(clock=clock)
    for instance in demo.instances:
        statuses = {e["statusMessage"] for e in instance.journal(NOW, 1440, 5000)}
        assert (statuses == {""}) == (instance.name == "max-channel"), instance.name


def test_the_demo_stuck_bot_stalls_a_minute_after_start_for_half_an_hour_every_two_hours(
    clock: Clock,
) -> None:
    demo = Simulator.demo(clock=clock)
    for start in (NOW + 60, NOW + 60 + 7200):
        end = start + 1800
        clock.now = end - 0.001
        for instance in demo.instances:
            actions = actions_between(instance.journal(clock.now, 1440, 5000), start, end)
            if instance.name == "stuck-bot":
                assert actions == 0
            elif instance.statuses:
                assert actions > 100, instance.name
        clock.now = end + 60
        stuck = demo.instance("stuck-bot").journal(clock.now, 1440, 5000)
        assert actions_between(stuck, end, end + 60) > 200  # what the stall held


def test_the_demo_stall_and_outage_follow_their_keyword_arguments(clock: Clock) -> None:
    demo = Simulator.demo(clock=clock, stall_start_in=5, stall_duration=10, stall_period=0,
                          outage_start_in=20, outage_duration=30, outage_period=0)  # fmt: skip
    stuck, support = demo.instance("stuck-bot"), demo.instance("support-bot")
    assert (stuck.stall_start, stuck.stall_duration, stuck.stall_period) == (NOW + 5, 10, 0)
    assert (support.outage_start, support.outage_duration) == (NOW + 20, 30)
    assert support.effective_state(NOW + 49) == "notAuthorized"
    assert support.effective_state(NOW + 50) == "authorized"


def test_the_exporter_configuration_can_judge_deliveries_sooner(capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    simulator = Simulator(instances=1, seed=5)
    document = simulator.exporter_config(poll_interval="5s", undelivered_after="2m")
    assert document["defaults"] == {"poll_interval": "5s", "undelivered_after": "2m"}
    assert "defaults" not in simulator.exporter_config()
    assert main(["--demo", "--print-config", "--listen", "127.0.0.1:18083"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["defaults"] == {"undelivered_after": DEMO_UNDELIVERED_AFTER}
    assert [i["name"] for i in printed["instances"]] == [i.name for i in Simulator.demo().instances]


def test_the_help_lists_the_control_api(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for action in ("messages", "incoming", "fault", "state", "queue", "outages", "stalls",
                   "statuses", "requests"):  # fmt: skip
        assert f"/_sim/instances/{{x}}/{action}" in text, action


# --- the control API: a route table, documented by --help --------------------------------


def control(sim: Simulator, verb: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:  # fmt: skip
    return requests.request(verb, sim.url + path, json=body, timeout=5, **kwargs)


def flat(text: str) -> str:
    """``text`` with every run of white space one space: the help wraps long lines."""
    return " ".join(text.split())


def help_text(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_the_help_documents_every_control_route_with_its_body_and_effect(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = help_text(capsys)
    for route in ROUTES.values():
        assert f"  {route.verb:<6} {route.path}\n" in text, (route.verb, route.path)
        assert flat(route.effect) in flat(text), route.path
        if route.body is not None:
            assert flat(f"body: {route.body.shape}") in flat(text), route.path


def test_the_help_documents_every_fault_mode_with_its_parameters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = flat(help_text(capsys))
    for mode in FAULTS.values():
        assert f"{mode.name} {flat(mode.effect)}" in text, mode.name
        for param in mode.params:
            assert f"{param.name}: {param.kind.name}" in text, (mode.name, param.name)
    assert "curl -X PUT 127.0.0.1:8080/_sim/instances/" in text


@pytest.mark.process
def test_python_dash_m_exporter_simulator_prints_the_help() -> None:
    result = subprocess.run([sys.executable, "-m", "exporter.simulator", "--help"],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: greenapi-simulator")
    assert "PUT    /_sim/instances/{x}/fault" in result.stdout and "duplicate_ids" in result.stdout


def test_every_route_of_the_table_has_its_own_verb_and_path() -> None:
    assert len(ROUTES) == len(ROUTES_IN_ORDER)
    assert all(key == (route.verb, route.path) for key, route in ROUTES.items())


@pytest.mark.parametrize(
    ("verb", "path"),
    [
        ("PUT", "/_sim/instances/sim-1/gremlins"),
        ("DELETE", "/_sim/instances/sim-1/state"),  # a known path, not with this verb
        ("GET", "/_sim/instances/sim-1/fault"),
        ("PUT", "/_sim/instances/sim-1/fault/extra"),
        ("GET", "/_sim/elsewhere"),
    ],
)
def test_an_unknown_control_route_is_404(sim: Simulator, verb: str, path: str) -> None:
    answer = control(sim, verb, path, {"mode": "hang"})
    assert answer.status_code == 404
    assert f"no control route {verb} {path}" in answer.json()["error"]
    assert journal(sim).status_code == 200  # and nothing was changed


@pytest.mark.parametrize("path", ["/_sim/instances/nobody", "/_sim/instances/nobody/requests"])
def test_a_route_to_an_unknown_instance_is_404_naming_it(sim: Simulator, path: str) -> None:
    answer = control(sim, "GET", path)
    assert answer.status_code == 404 and "'nobody'" in answer.json()["error"]


BODY_ROUTES = [route for route in ROUTES.values() if route.body is not None]


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: f"{r.verb} {r.path}")
def test_a_body_of_the_wrong_shape_is_400_saying_what_was_expected(sim: Simulator, route: Route) -> None:  # fmt: skip
    assert route.body is not None
    path = route.path.replace("{x}", "sim-1")
    for wrong in ("nonsense", None):
        answer = control(sim, route.verb, path, wrong)
        assert answer.status_code == 400, (wrong, answer.text)
        assert route.body.shape in answer.json()["error"]
    answer = control(sim, route.verb, path, data=b"{not json")
    assert answer.status_code == 400 and route.body.shape in answer.json()["error"]


@pytest.mark.parametrize(
    ("action", "body", "problem"),
    [
        ("outages", {"start": 0, "duration": 60}, "unknown key 'start'"),
        ("stalls", {"start_in": "now", "duration": 60}, "start_in must be seconds, not 'now'"),
        ("queue", {"count": -1}, "count must be 0 to 100000, not -1"),
        ("state", {}, "state is missing"),
        ("rate", {"per_second": True}, "per_second must be number >= 0"),
        ("burst", {"count": 2.5}, "count must be 0 to 100000"),
    ],
)
def test_a_key_that_is_unknown_missing_or_of_the_wrong_kind_is_400_naming_it(
    sim: Simulator, action: str, body: dict[str, Any], problem: str
) -> None:
    answer = control(sim, "PUT", f"/_sim/instances/sim-1/{action}", body)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(f"{action}: {problem}")
    assert "expected {" in answer.json()["error"]


def test_fault_parameters_are_checked_against_the_fault_table(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="fault status: code must be 100 to 599, not '502'"):
        sim.set_fault("sim-1", "status", code="502")
    with pytest.raises(
        ValueError, match=re.escape("fault delay: unknown key 'secs' (known: seconds)")
    ):
        sim.set_fault("sim-1", "delay", secs=3)
    answer = control(sim, "PUT", "/_sim/instances/sim-1/fault", {"mode": "huge", "megabytes": 0})
    assert answer.status_code == 400
    assert FAULTS["huge"].shape in answer.json()["error"]
    assert isinstance(journal(sim).json(), list)  # no fault was set


# --- the control API drives the demo's story: looking, bursts, rates, undoing ----------------


def test_the_instance_summary_shows_what_the_api_answers_and_the_knobs(
    timed: Simulator, clock: Clock
) -> None:
    base = "/_sim/instances/sim-1"
    assert control(
        timed, "PUT", base + "/fault", {"mode": "delay", "method": "getStateInstance"}
    ).ok
    assert control(timed, "PUT", base + "/outages", {"start_in": 10, "duration": 60}).ok
    clock.now += 30
    summary = control(timed, "GET", base).json()
    assert summary["name"] == "sim-1" and summary["id_instance"] == "1101000001"
    assert summary["state"] == "notAuthorized"
    assert summary["queue"] == queue(timed) > 0
    assert summary["fault"] == {"mode": "delay", "method": "getStateInstance", "seconds": 5}
    assert summary["outages"] == {"start_in": -20, "duration": 60, "period": None}
    assert summary["stalls"] is None and summary["rate_per_second"] == 0.1
    assert control(timed, "GET", "/_sim/instances/1101000001").json() == summary


@pytest.fixture
def silent(clock: Clock) -> Iterator[Simulator]:
    """One instance on a fake clock that generates nothing by itself."""
    simulator = Simulator(instances=1, seed=4, rate=0, rate_limit=False, clock=clock)
    simulator.start()
    yield simulator
    simulator.stop()


def test_a_burst_is_queued_at_once_and_leaves_one_a_second(silent: Simulator, clock: Clock) -> None:  # fmt: skip
    assert control(silent, "PUT", "/_sim/instances/sim-1/burst", {"count": 5}).ok
    assert queue(silent) == 5 and sent_ids(silent) == set()
    clock.now = NOW + 7  # ready within 2 s, then one a second
    sent = call(silent, "lastOutgoingMessages").json()
    assert len(sent) == 5 and queue(silent) == 0
    timestamps = sorted(e["timestamp"] for e in sent)
    assert timestamps[-1] - timestamps[0] >= 4


def test_a_burst_while_not_authorized_waits_then_drains_one_a_second(
    silent: Simulator, clock: Clock
) -> None:
    base = "/_sim/instances/sim-1"
    assert control(silent, "PUT", base + "/state", {"state": "notAuthorized"}).ok
    assert control(silent, "PUT", base + "/burst", {"count": 20}).ok
    clock.now = NOW + 300
    assert queue(silent) == 20 and sent_ids(silent) == set()
    assert control(silent, "PUT", base + "/state", {"state": "authorized"}).ok
    clock.now = NOW + 300 + 9.5
    assert len(sent_ids(silent)) == 10 and queue(silent) == 10


def test_the_rate_changes_the_traffic_from_now_on(clock: Clock) -> None:
    def traffic() -> tuple[list[Any], set[str]]:
        clock.now = NOW
        fleet = Simulator(instances=1, seed=4, rate=0, clock=clock)
        fleet.set_rate("sim-1", 2)
        clock.now = NOW + 60
        fleet.set_rate("sim-1", 0)
        instance = fleet.instances[0]
        sent_by_then = {e["idMessage"] for e in instance.journal(NOW + 63, 1440, 5000)}
        return instance.journal(NOW + 600, 1440, 5000), sent_by_then

    elements, sent_by_then = traffic()
    assert 80 < len(elements) < 160  # two a second for a minute
    assert {e["idMessage"] for e in elements} == sent_by_then  # none since the rate was 0
    assert traffic() == (elements, sent_by_then)  # the same seed, clock and calls: the same


def test_the_control_api_sets_the_rate(silent: Simulator, clock: Clock) -> None:
    assert control(silent, "PUT", "/_sim/instances/sim-1/rate", {"per_second": 1}).ok
    assert control(silent, "GET", "/_sim/instances/sim-1").json()["rate_per_second"] == 1
    clock.now = NOW + 120
    assert len(sent_ids(silent)) > 60


@pytest.mark.parametrize(
    ("action", "method"),
    [("messages", "lastOutgoingMessages"), ("incoming", "lastIncomingMessages")],
)
def test_deleting_scripted_elements_brings_the_generated_ones_back(
    timed: Simulator, clock: Clock, action: str, method: str
) -> None:
    generated_now = call(timed, method).json()
    assert generated_now  # replies too: ten minutes of history, some of it read and answered
    assert control(timed, "PUT", f"/_sim/instances/sim-1/{action}", [{"idMessage": "x"}]).ok
    assert call(timed, method).json() == [{"idMessage": "x"}]
    assert control(timed, "DELETE", f"/_sim/instances/sim-1/{action}").ok
    assert call(timed, method).json() == generated_now


def test_deleting_the_outages_authorizes_the_instance_now(timed: Simulator, clock: Clock) -> None:
    base = "/_sim/instances/sim-1"
    assert control(timed, "PUT", base + "/outages", {"start_in": 0, "duration": 600}).ok
    clock.now = NOW + 120
    assert state(timed) == {"stateInstance": "notAuthorized"} and queue(timed) > 5
    assert control(timed, "DELETE", base + "/outages").ok
    assert state(timed) == {"stateInstance": "authorized"}
    assert control(timed, "GET", base).json()["outages"] is None
    clock.now = NOW + 120 + 30
    assert queue(timed) <= 2  # drained one a second


def test_deleting_the_stalls_releases_what_they_held_within_a_minute(
    timed: Simulator, clock: Clock
) -> None:
    base = "/_sim/instances/sim-1"
    assert control(timed, "PUT", base + "/stalls", {"start_in": 0, "duration": 3600}).ok
    clock.now = NOW + 300
    held = {e["idMessage"] for e in call(timed, "lastOutgoingMessages").json()
            if e["statusMessage"] == "sent" and e["timestamp"] >= NOW}  # fmt: skip
    assert len(held) > 10
    assert control(timed, "DELETE", base + "/stalls").ok
    clock.now = NOW + 300 + 61
    after = by_id(call(timed, "lastOutgoingMessages").json())
    delivered = [key for key in held if after[key]["statusMessage"] in DELIVERED]
    assert len(delivered) > len(held) * 0.9  # all but the few recipients who are offline


def test_the_control_api_brings_the_demo_story_forward(clock: Clock) -> None:
    demo = Simulator.demo(clock=clock)
    demo.rate_limit = False  # the fake clock does not move between requests
    demo.start()
    try:
        support = "/_sim/instances/support-bot"
        assert control(demo, "GET", support).json()["state"] == "authorized"
        assert control(demo, "PUT", support + "/outages", {"start_in": 0, "duration": 600}).ok
        assert control(demo, "PUT", support + "/burst", {"count": 30}).ok
        summary = control(demo, "GET", support).json()
        assert summary["state"] == "notAuthorized" and summary["queue"] >= 30
        clock.now = NOW + 60  # a minute of the demo's traffic, 0.25 a second, queued as well
        assert control(demo, "GET", support).json()["queue"] >= 30 + 10
    finally:
        demo.stop()


def test_every_control_route_is_in_the_readme() -> None:
    from exporter.simulator import ROUTES

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for verb, path in ROUTES:
        assert f"`{verb} {path}`" in readme, (verb, path)
