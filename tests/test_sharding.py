"""Sharding: N replicas split the instances by a stable hash; each is polled by exactly one."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.cli import UsageError, parse_shard
from exporter.config import Config, InstanceConfig, Settings, parse_config, shard_of
from exporter.simulator import Simulator
from tests.conftest import ExporterProcess, wait_until


def config(ids: list[str]) -> Config:
    instances = tuple(
        InstanceConfig(name=f"i{n}", id_instance=i, api_token="t", settings=Settings(api_url="http://x"))
        for n, i in enumerate(ids)
    )  # fmt: skip
    return Config(source="c.yaml", instances=instances)


@given(st.lists(st.integers(1, 10**10).map(str), unique=True, max_size=50), st.integers(1, 8))
def test_every_instance_belongs_to_exactly_one_shard(ids: list[str], count: int) -> None:
    whole = config(ids)
    shards = [whole.for_shard(index, count).instances for index in range(count)]
    names = [i.name for shard in shards for i in shard]
    assert sorted(names) == sorted(i.name for i in whole.instances)


def test_the_shard_of_an_instance_does_not_depend_on_the_others() -> None:
    alone = config(["1101000001"]).for_shard(shard_of("1101000001", 4), 4).instances
    among = config(["3100000009", "1101000001", "7105000002"]).for_shard(
        shard_of("1101000001", 4), 4
    )
    assert [i.id_instance for i in alone] == ["1101000001"]
    assert "1101000001" in [i.id_instance for i in among.instances]


@pytest.mark.parametrize(("index", "count", "expected"), [("0", "1", (0, 1)), ("2", "3", (2, 3)),
                                                          ("greenapi-exporter-1", "2", (1, 2))])  # fmt: skip
def test_shard_flags_accept_a_number_or_a_pod_name(
    index: str, count: str, expected: tuple[int, int]
) -> None:
    assert parse_shard(index, count) == expected


@pytest.mark.parametrize(("index", "count"), [("3", "3"), ("x", "2"), ("0", "0"), ("-1", "2")])
def test_bad_shard_flags_are_refused(index: str, count: str) -> None:
    with pytest.raises(UsageError):
        parse_shard(index, count)


@pytest.mark.process
def test_three_replicas_poll_every_instance_exactly_once(tmp_path: Path) -> None:
    sim = Simulator(instances=10, seed=6, history=600)
    sim.start()
    replicas: list[ExporterProcess] = []
    try:
        for index in range(3):
            directory = tmp_path / f"shard-{index}"
            directory.mkdir()
            replicas.append(ExporterProcess(directory, sim.exporter_config(poll_interval="1s"),
                                            "--shard.index", str(index), "--shard.count", "3"))  # fmt: skip
        polled: list[set[str]] = []
        for replica in replicas:
            replica.wait_ready()
            samples = replica.scrape()
            polled.append(
                {dict(labels)["name"] for (name, labels) in samples if name == "greenapi_up"}
            )
        assert sorted(n for shard in polled for n in shard) == sorted(i.name for i in sim.instances)
        # And the simulator saw each instance from one replica only: no 429s anywhere.
        wait_until(lambda: all(sim.requests_log(i.name) for i in sim.instances))
        assert all(e["status"] == 200 for i in sim.instances for e in sim.requests_log(i.name))
    finally:
        for replica in replicas:
            replica.stop()
        sim.stop()


def test_a_shard_that_gets_no_instance_says_so() -> None:
    config = parse_config(
        {"instances": [{"name": "a", "id_instance": "1101000001", "api_token": "t" * 50}]},
        "config.yaml", {},
    )  # fmt: skip
    mine = shard_of("1101000001", 4)
    empty = next(index for index in range(4) if index != mine)
    assert any("polls no instance" in w for w in config.for_shard(empty, 4).warnings)
    assert not any("polls no instance" in w for w in config.for_shard(mine, 4).warnings)
