"""The simulator behaves like GREEN-API where the exporter depends on it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
import yaml

from exporter.simulator import FAULT_MODES, Simulator

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
def test_fault_modes(sim: Simulator, mode: str, params: dict[str, object], check: object) -> None:
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


def test_the_demo_has_a_stuck_instance_with_old_undelivered_messages() -> None:
    demo = Simulator.demo()
    names = [i.name for i in demo.instances]
    assert names == ["shop-bot", "support-bot", "stuck-bot", "max-channel"]
    now = time.time()
    stuck = demo.instance("stuck-bot").journal(now, 1440, 5000)
    old_sent = [e for e in stuck if e["statusMessage"] == "sent" and e["timestamp"] < now - 300]
    assert len(old_sent) >= 10
    assert demo.exporter_config()["instances"][3]["api_url"].endswith("/v3")
