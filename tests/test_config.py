"""Configuration: every invalid input refused with its key path; valid files load right."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config import (
    Config,
    ConfigError,
    format_duration,
    load_config,
    parse_config,
    parse_duration,
)

TOKEN = "d0c5e7a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2"
ROOT = Path(__file__).resolve().parent.parent


def instance(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": "sales-bot", "id_instance": "1101000001", "api_token": TOKEN}
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not ...}


def load(tmp_path: Path, document: Any, environ: dict[str, str] | None = None) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document) if not isinstance(document, str) else document)
    path.chmod(0o600)
    return load_config(str(path), environ or {})


def refused(tmp_path: Path, document: Any, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, document, environ)
    text = str(caught.value)
    for line in text.splitlines():
        assert line.startswith(str(tmp_path / "config.yaml") + ": "), line
    assert TOKEN not in text
    return text


# --- valid configurations ---------------------------------------------------------------


def test_defaults_apply_to_every_instance(tmp_path: Path) -> None:
    config = load(tmp_path, {"instances": [instance()]})
    [i] = config.instances
    assert (i.api_url, i.poll_interval, i.window, i.timeout, i.undelivered_after, i.max_messages) == (
        "https://api.green-api.com", 60, 86400, 10, 300, 5000,
    )  # fmt: skip
    assert (config.concurrency, config.state_file, i.collect) == (8, None, ("outgoing",))


def test_the_defaults_section_is_inherited_and_an_instance_override_wins(tmp_path: Path) -> None:
    config = load(tmp_path, {
        "defaults": {"poll_interval": "30s", "window": "2h"},
        "instances": [instance(), instance(name="b", id_instance=2, poll_interval="1h30m")],
    })  # fmt: skip
    assert [(i.poll_interval, i.window) for i in config.instances] == [(30, 7200), (5400, 7200)]


@pytest.mark.parametrize(
    ("url", "expected"),
    [("https://1101.api.green-api.com", "https://1101.api.green-api.com"),
     ("https://1101.api.green-api.com/", "https://1101.api.green-api.com"),
     ("https://3100.api.green-api.com/v3", "https://3100.api.green-api.com"),
     ("https://3100.api.green-api.com/v3/", "https://3100.api.green-api.com")],
)  # fmt: skip
def test_api_url_loses_a_trailing_slash_and_v3(tmp_path: Path, url: str, expected: str) -> None:
    [i] = load(tmp_path, {"instances": [instance(api_url=url)]}).instances
    assert i.api_url == expected
    assert i.journal_url() == f"{expected}/waInstance1101000001/lastOutgoingMessages/{TOKEN}"


def test_an_integer_id_instance_becomes_its_digits(tmp_path: Path) -> None:
    [i] = load(tmp_path, {"instances": [instance(id_instance=1101000001)]}).instances
    assert i.id_instance == "1101000001"


def test_variables_are_read_from_the_environment(tmp_path: Path) -> None:
    [i] = load(
        tmp_path,
        {"instances": [instance(api_token="${SALES_TOKEN}", api_url="https://$${HOST}.x")]},
        {"SALES_TOKEN": TOKEN},
    ).instances
    assert i.api_token == TOKEN
    assert i.api_url == "https://${HOST}.x"  # $$ is a literal $


def test_a_token_file_is_read_and_stripped_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    [i] = load(tmp_path, {"instances": [instance(api_token=..., api_token_file="token")]}).instances
    assert i.api_token == TOKEN and i.token_source == "api_token_file token"


def test_labels_are_sorted_and_their_union_is_the_label_names(tmp_path: Path) -> None:
    config = load(tmp_path, {"instances": [
        instance(labels={"team": "sales", "region": "eu"}),
        instance(name="b", id_instance=2, labels={"tier": 1}),
    ]})  # fmt: skip
    assert config.instances[0].labels == (("region", "eu"), ("team", "sales"))
    assert config.instances[1].labels == (("tier", "1"),)
    assert config.label_names == ("region", "team", "tier")


def test_the_window_is_sent_in_whole_minutes(tmp_path: Path) -> None:
    [i] = load(tmp_path, {"instances": [instance(window="90m")]}).instances
    assert i.window_minutes == 90


def test_a_relative_state_file_is_relative_to_the_config(tmp_path: Path) -> None:
    config = load(tmp_path, {"state_file": "state.json", "instances": [instance()]})
    assert config.state_file == str(tmp_path / "state.json")


def test_the_example_configuration_loads() -> None:
    environ = {"SALES_TOKEN": TOKEN, "SUPPORT_TOKEN": TOKEN[::-1], "MAX_TOKEN": "f" * 50}
    config = load_config(str(ROOT / "config.example.yaml"), environ)
    assert len(config.instances) >= 2


# --- refusals ----------------------------------------------------------------------------


def test_an_unknown_key_is_refused_with_its_path_and_a_suggestion(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(poll_intervall="5m")]})
    assert "instances[0].poll_intervall: unknown key (did you mean 'poll_interval'?)" in text


def test_an_unknown_key_in_defaults_is_refused(tmp_path: Path) -> None:
    assert "defaults.colour: unknown key" in refused(
        tmp_path, {"defaults": {"colour": 1}, "instances": [instance()]}
    )


def test_an_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    assert "concurency: unknown key (did you mean 'concurrency'?)" in refused(
        tmp_path, {"concurency": 2, "instances": [instance()]}
    )


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(poll_interval="soon", window="100d")]})
    assert len(text.splitlines()) == 2
    assert "instances[0].poll_interval" in text and "instances[0].window" in text


def test_a_missing_token_is_refused(tmp_path: Path) -> None:
    assert "instances[0].api_token: missing" in refused(
        tmp_path, {"instances": [instance(api_token=...)]}
    )


def test_an_empty_token_is_refused_without_quoting_it(tmp_path: Path) -> None:
    assert "instances[0].api_token: must not be empty" in refused(
        tmp_path, {"instances": [instance(api_token="  ")]}
    )


def test_both_token_and_token_file_are_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(api_token_file="t")]})
    assert "instances[0]: give either api_token or api_token_file, not both" in text


def test_an_unreadable_token_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(api_token=..., api_token_file="absent")]})
    assert "instances[0].api_token_file: cannot read absent: no such file" in text


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_token_file_without_permission_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "token").chmod(0)
    assert "permission denied" in refused(
        tmp_path, {"instances": [instance(api_token=..., api_token_file="token")]}
    )


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("\n")
    assert "token is empty" in refused(
        tmp_path, {"instances": [instance(api_token=..., api_token_file="token")]}
    )


def test_a_duplicate_name_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(), instance(id_instance=2)]})
    assert "instances[1].name: duplicate name 'sales-bot' (also instances[0])" in text


def test_a_duplicate_id_instance_is_refused(tmp_path: Path) -> None:
    text = refused(
        tmp_path, {"instances": [instance(), instance(name="b", id_instance=1101000001)]}
    )
    assert "instances[1].id_instance: duplicate id_instance 1101000001 (also instances[0])" in text


def test_an_unset_variable_is_refused_by_name(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(api_token="${NOPE}")]})
    assert "instances[0].api_token: environment variable NOPE is not set" in text


@pytest.mark.parametrize("value", ["soon", "5 minutes", "-5s", True, [1], "1h30"])
def test_a_bad_duration_is_refused(tmp_path: Path, value: object) -> None:
    assert "instances[0].timeout:" in refused(tmp_path, {"instances": [instance(timeout=value)]})


def test_a_window_over_90_days_is_refused(tmp_path: Path) -> None:
    assert "instances[0].window: must be between 1m and 90d" in refused(
        tmp_path, {"instances": [instance(window="91d")]}
    )


def test_a_poll_interval_under_a_second_is_refused(tmp_path: Path) -> None:
    assert "instances[0].poll_interval: must be at least 1s" in refused(
        tmp_path, {"instances": [instance(poll_interval="500ms")]}
    )


@pytest.mark.parametrize("label", ["bad-name", "__reserved", "1st"])
def test_an_invalid_label_name_is_refused(tmp_path: Path, label: str) -> None:
    text = refused(tmp_path, {"instances": [instance(labels={label: "x"})]})
    assert f"instances[0].labels.{label}: not a valid Prometheus label name" in text


@pytest.mark.parametrize(
    "label", ["name", "id_instance", "status", "message_type", "job", "instance"]
)
def test_a_label_that_clashes_with_the_exporters_own_is_refused(tmp_path: Path, label: str) -> None:
    assert f"instances[0].labels.{label}: clashes" in refused(
        tmp_path, {"instances": [instance(labels={label: "x"})]}
    )


@pytest.mark.parametrize("value", ["abc", "12a", True, 1.5, None])
def test_an_id_instance_that_is_not_digits_is_refused(tmp_path: Path, value: object) -> None:
    assert "instances[0].id_instance: expected digits" in refused(
        tmp_path, {"instances": [instance(id_instance=value)]}
    )


def test_a_boolean_is_not_a_number(tmp_path: Path) -> None:
    assert "concurrency: expected a whole number >= 1, got True" in refused(
        tmp_path, {"concurrency": True, "instances": [instance()]}
    )


@pytest.mark.parametrize(
    "document", [{}, {"instances": []}, {"instances": "x"}], ids=["missing", "empty", "string"]
)
def test_instances_must_be_a_non_empty_list(tmp_path: Path, document: object) -> None:
    assert ": instances: " in refused(tmp_path, document)


def test_a_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    text = refused(tmp_path, "instances:\n  - name: [unclosed\n")
    assert "line" in text and "column" in text and "invalid YAML" in text


def test_a_document_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    assert "expected a mapping at the top level" in refused(tmp_path, "- a\n- b\n")


def test_an_api_url_that_is_not_http_is_refused(tmp_path: Path) -> None:
    assert "instances[0].api_url: expected an http:// or https:// URL" in refused(
        tmp_path, {"instances": [instance(api_url="ftp://x")]}
    )


def test_a_missing_file_is_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("/nonexistent/config.yaml", {})
    assert (
        str(caught.value)
        == "/nonexistent/config.yaml: cannot read the configuration file: no such file"
    )


def test_an_unknown_collector_is_refused(tmp_path: Path) -> None:
    assert "instances[0].collect[1]: unknown collector 'bogus'" in refused(
        tmp_path, {"instances": [instance(collect=["outgoing", "bogus"])]}
    )


# --- secrets -----------------------------------------------------------------------------


def test_the_token_appears_in_no_repr_summary_or_string(tmp_path: Path) -> None:
    config = load(tmp_path, {"instances": [instance()]})
    for text in (
        repr(config),
        str(config),
        repr(config.instances[0]),
        config.summary(),
        config.instances[0].redacted_url(),
    ):
        assert TOKEN not in text
    assert config.secrets() == (TOKEN,)


def test_a_world_readable_file_with_inline_tokens_gets_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"instances": [instance()]}))
    path.chmod(0o644)
    [warning] = load_config(str(path), {}).warnings
    assert "readable by all users" in warning and TOKEN not in warning


def test_tokens_from_variables_get_no_permission_warning(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"instances": [instance(api_token="${T}")]}))
    path.chmod(0o644)
    assert load_config(str(path), {"T": TOKEN}).warnings == ()


# --- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("1d", 86400),
        ("1w", 604800),
        ("500ms", 0.5),
        (42, 42),
        ("7", 7),
    ],
)
def test_durations_in_prometheus_style(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("seconds", "text"), [(90, "1m30s"), (86400, "1d"), (0, "0s"), (5400, "1h30m")]
)
def test_durations_are_formatted_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# --- property: any document is a config or a ConfigError ----------------------------------

KEYS = ["defaults", "concurrency", "state_file", "instances", "name", "id_instance", "api_token",
        "api_token_file", "api_url", "poll_interval", "window", "timeout", "undelivered_after",
        "max_messages", "labels", "collect", "team", "x"]  # fmt: skip
documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["5m", "${X}", "$$", "${", "https://a.b/v3", "1101", "outgoing"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS), children, max_size=6)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_any_document_is_a_config_or_a_config_error(document: object) -> None:
    try:
        config = parse_config(document, "config.yaml", {"X": "1"})
    except ConfigError as exc:
        assert exc.errors and all(line.startswith("config.yaml") for line in exc.errors)
    else:
        assert config.instances


def test_a_poll_interval_that_would_exhaust_the_stated_quota_is_warned_about(
    tmp_path: Path,
) -> None:
    config = load(
        tmp_path,
        {
            "instances": [
                instance(monthly_quota=1000),
                instance(name="b", id_instance=2, monthly_quota=1000, poll_interval="1h"),
            ]
        },
    )
    [warning] = config.warnings
    assert (
        "instances[0]: poll_interval 1m makes about 43200 journal calls a month, over monthly_quota 1000"
        in warning
    )
    assert "use poll_interval 43m12s or more" in warning


def test_a_collector_not_implemented_yet_is_refused_by_name(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(collect=["outgoing", "state"])]})
    assert "instances[0].collect[1]: collector 'state' is not supported by this version yet" in text
