"""Configuration: every invalid input refused with its key path; valid files load right."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.collectors import BY_NAME
from exporter.config import (
    OWN_LABELS,
    SETTINGS,
    Config,
    ConfigError,
    InstanceConfig,
    Settings,
    format_duration,
    load_config,
    parse_config,
    parse_duration,
    settings_table,
)

# Distinctive, so that finding it anywhere in a message is certainly a leak.
TOKEN = "d0c5e7a1b2c3d4e5f6a7b8c9SECRETTOKENd1e2f3a4b5c6d7e8f9"
ROOT = Path(__file__).resolve().parent.parent


def instance(**overrides: Any) -> dict[str, Any]:
    """A valid instance entry; an override of ``...`` removes the key."""
    entry: dict[str, Any] = {"name": "sales-bot", "id_instance": "1101000001", "api_token": TOKEN}
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not ...}


def write(tmp_path: Path, document: Any, mode: int = 0o600) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    path.chmod(mode)
    return path


def load(tmp_path: Path, document: Any, environ: dict[str, str] | None = None) -> Config:
    return load_config(str(write(tmp_path, document)), environ or {})


def refused(tmp_path: Path, document: Any, environ: dict[str, str] | None = None) -> str:
    """The refusal's text; checks each line is one problem that starts with the file name and
    that the token appears nowhere."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, document, environ)
    text = str(caught.value)
    assert caught.value.errors and text == "\n".join(caught.value.errors)
    for line in caught.value.errors:
        assert line.startswith(str(tmp_path / "config.yaml") + ": "), line
        assert "\n" not in line
    assert TOKEN not in text
    return text


def at(tmp_path: Path, key_path: str) -> str:
    """The start of an error line about ``key_path`` of the test file."""
    return f"{tmp_path / 'config.yaml'}: {key_path}: "


# --- valid configurations ---------------------------------------------------------------


def test_built_in_defaults_apply_when_nothing_is_set(tmp_path: Path) -> None:
    config = load(tmp_path, {"instances": [instance()]})
    [i] = config.instances
    s = i.settings
    assert (s.api_url, s.poll_interval, s.window, s.timeout, s.undelivered_after, s.max_messages) == (
        "https://api.green-api.com", 60, 86400, 10, 300, 5000,
    )  # fmt: skip
    assert (s.collect, i.labels, s.monthly_quota) == (("outgoing",), (), None)
    assert (config.concurrency, config.state_file, config.warnings) == (8, None, ())


def test_the_defaults_section_is_inherited_by_every_instance(tmp_path: Path) -> None:
    config = load(tmp_path, {
        "defaults": {"api_url": "https://7105.api.greenapi.com", "window": "2h", "timeout": 5,
                     "undelivered_after": "10m", "max_messages": 100},
        "instances": [instance(), instance(name="b", id_instance=2)],
    })  # fmt: skip
    for s in (i.settings for i in config.instances):
        assert (s.api_url, s.window, s.timeout, s.undelivered_after, s.max_messages) == (
            "https://7105.api.greenapi.com", 7200, 5, 600, 100,
        )  # fmt: skip


def test_an_instance_override_wins_over_the_defaults_section(tmp_path: Path) -> None:
    config = load(tmp_path, {
        "defaults": {"poll_interval": "30s", "window": "2h"},
        "instances": [instance(), instance(name="b", id_instance=2, poll_interval="1h30m")],
    })  # fmt: skip
    settings = [i.settings for i in config.instances]
    assert [(s.poll_interval, s.window) for s in settings] == [(30, 7200), (5400, 7200)]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("90s", 90), ("5m", 300), ("1h30m", 5400), ("1d", 86400), ("1w", 604800), (42, 42),
     (2.5, 2.5), ("7", 7), ("1.5", 1.5)],
)  # fmt: skip
def test_durations_in_the_file_are_parsed(tmp_path: Path, value: object, seconds: float) -> None:
    [i] = load(tmp_path, {"instances": [instance(poll_interval=value)]}).instances
    assert i.settings.poll_interval == seconds


def test_a_timeout_below_a_second_is_allowed(tmp_path: Path) -> None:
    [i] = load(tmp_path, {"instances": [instance(timeout="500ms")]}).instances
    assert i.settings.timeout == 0.5


@pytest.mark.parametrize(
    ("url", "expected"),
    [("https://1101.api.green-api.com", "https://1101.api.green-api.com"),
     ("https://1101.api.green-api.com/", "https://1101.api.green-api.com"),
     ("https://3100.api.green-api.com/v3", "https://3100.api.green-api.com"),
     ("https://3100.api.green-api.com/v3/", "https://3100.api.green-api.com"),
     ("HTTP://127.0.0.1:8080/", "http://127.0.0.1:8080"),
     ("https://proxy.example/green/", "https://proxy.example/green")],
)  # fmt: skip
def test_api_url_loses_a_trailing_slash_and_then_a_trailing_v3(
    tmp_path: Path, url: str, expected: str
) -> None:
    [i] = load(tmp_path, {"instances": [instance(api_url=url)]}).instances
    assert i.settings.api_url == expected


def test_the_journal_url_is_built_from_the_normalised_api_url(tmp_path: Path) -> None:
    [i] = load(tmp_path, {"instances": [instance(api_url="https://x.example/v3/")]}).instances
    assert i.journal_url() == f"https://x.example/waInstance1101000001/lastOutgoingMessages/{TOKEN}"
    assert i.redacted_url() == (
        "https://x.example/waInstance1101000001/lastOutgoingMessages/<redacted>"
    )


def test_an_integer_id_instance_becomes_its_digits(tmp_path: Path) -> None:
    [i] = load(tmp_path, {"instances": [instance(id_instance=1101000001)]}).instances
    assert i.id_instance == "1101000001"


def test_labels_are_sorted_by_name_and_numbers_become_strings(tmp_path: Path) -> None:
    labels = {"team": "sales", "region": "eu", "tier": 1, "weight": 0.5}
    [i] = load(tmp_path, {"instances": [instance(labels=labels)]}).instances
    assert i.labels == (("region", "eu"), ("team", "sales"), ("tier", "1"), ("weight", "0.5"))


def test_label_names_are_the_sorted_union_over_instances(tmp_path: Path) -> None:
    config = load(tmp_path, {"instances": [
        instance(labels={"team": "sales", "region": "eu"}),
        instance(name="b", id_instance=2, labels={"tier": "gold"}),
        instance(name="c", id_instance=3),
    ]})  # fmt: skip
    assert config.label_names == ("region", "team", "tier")


def test_a_token_file_is_read_and_its_trailing_newline_stripped(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    entry = instance(api_token=..., api_token_file=str(tmp_path / "token"))
    [i] = load(tmp_path, {"instances": [entry]}).instances
    assert i.api_token == TOKEN
    assert i.token_source == f"api_token_file {tmp_path / 'token'}"


def test_a_relative_token_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "sales").write_text(f"  {TOKEN}\r\n")
    entry = instance(api_token=..., api_token_file="secrets/sales")
    [i] = load(tmp_path, {"instances": [entry]}).instances
    assert i.api_token == TOKEN


def test_variables_are_read_from_the_given_environment(tmp_path: Path) -> None:
    document = {"instances": [instance(api_token="${SALES_TOKEN}", api_url="https://${HOST}")]}
    [i] = load(
        tmp_path, document, {"SALES_TOKEN": TOKEN, "HOST": "1101.api.green-api.com"}
    ).instances
    assert (i.api_token, i.settings.api_url) == (TOKEN, "https://1101.api.green-api.com")


def test_a_double_dollar_is_a_literal_dollar(tmp_path: Path) -> None:
    [i] = load(tmp_path, {"instances": [instance(labels={"note": "$${NOT_A_VAR}"})]}).instances
    assert i.labels == (("note", "${NOT_A_VAR}"),)


def test_a_variable_can_give_a_whole_number(tmp_path: Path) -> None:
    document = {"concurrency": "${CONCURRENCY}", "instances": [instance()]}
    assert load(tmp_path, document, {"CONCURRENCY": "3"}).concurrency == 3


def test_load_config_reads_os_environ_when_no_environment_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENAPI_TEST_TOKEN", TOKEN)
    path = write(tmp_path, {"instances": [instance(api_token="${GREENAPI_TEST_TOKEN}")]})
    assert load_config(str(path)).instances[0].api_token == TOKEN


def test_the_window_is_sent_in_whole_minutes_and_at_least_one(tmp_path: Path) -> None:
    config = load(tmp_path, {"instances": [instance(window="90m"), instance(
        name="b", id_instance=2, window="1m59s")]})  # fmt: skip
    assert [i.window_minutes for i in config.instances] == [90, 1]


def test_a_relative_state_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = load(tmp_path, {"state_file": "state.json", "instances": [instance()]})
    assert config.state_file == str(tmp_path / "state.json")


def test_concurrency_can_be_set(tmp_path: Path) -> None:
    assert load(tmp_path, {"concurrency": 2, "instances": [instance()]}).concurrency == 2


def test_collect_is_inherited_from_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, {"defaults": {"collect": ["outgoing"]}, "instances": [instance()]})
    assert config.instances[0].settings.collect == ("outgoing",)


def test_the_example_configuration_loads_with_its_variables_supplied() -> None:
    environ = {"SALES_TOKEN": TOKEN, "SUPPORT_TOKEN": TOKEN[::-1], "MAX_TOKEN": "f" * 50}
    config = load_config(str(ROOT / "config.example.yaml"), environ)
    assert [i.name for i in config.instances] == ["sales-bot", "support-bot", "max-channel"]
    assert config.instances[2].settings.api_url == "https://3100.api.green-api.com"
    assert config.label_names == ("expect_traffic", "team")


def test_the_example_configuration_comments_every_line() -> None:
    for number, line in enumerate((ROOT / "config.example.yaml").read_text().splitlines(), 1):
        assert not line.strip() or "#" in line, f"line {number} has no comment: {line!r}"


# --- refusals ----------------------------------------------------------------------------


def test_an_unknown_key_is_refused_with_its_path_and_the_closest_key(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(poll_intervall="5m")]})
    assert (
        at(tmp_path, "instances[0].poll_intervall") + "unknown key (did you mean 'poll_interval'?)"
        in text
    )


def test_an_unknown_key_with_no_close_match_gets_no_suggestion(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(colour="red")]})
    assert text == at(tmp_path, "instances[0].colour") + "unknown key"


def test_an_unknown_key_in_defaults_is_refused_with_its_path(tmp_path: Path) -> None:
    text = refused(tmp_path, {"defaults": {"windw": "1h"}, "instances": [instance()]})
    assert at(tmp_path, "defaults.windw") + "unknown key (did you mean 'window'?)" in text


def test_an_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"concurency": 2, "instances": [instance()]})
    assert at(tmp_path, "concurency") + "unknown key (did you mean 'concurrency'?)" in text


def test_every_error_is_gathered_before_refusing(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(poll_interval="soon", window="100d")]})
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(at(tmp_path, "instances[0].poll_interval"))
    assert lines[1].startswith(at(tmp_path, "instances[0].window"))


def test_errors_from_every_section_and_instance_are_reported_together(tmp_path: Path) -> None:
    text = refused(tmp_path, {
        "concurrency": 0,
        "defaults": {"timeout": "x"},
        "instances": [instance(id_instance="abc"), instance(name="b", labels={"job": "x"})],
    })  # fmt: skip
    for key_path in ("defaults.timeout", "concurrency", "instances[0].id_instance",
                     "instances[1].labels.job"):  # fmt: skip
        assert at(tmp_path, key_path) in text
    assert len(text.splitlines()) == 4


def test_an_invalid_duration_message_says_how_to_write_one(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(), instance(name="b", id_instance=2), instance(
        name="c", id_instance=3, poll_interval="abc")]})  # fmt: skip
    assert text == at(tmp_path, "instances[2].poll_interval") + (
        "invalid duration 'abc' (use e.g. 90s, 5m, 1h30m or a number of seconds)"
    )


@pytest.mark.parametrize(
    "value", ["soon", "5 minutes", "1h30", "5m1h", "1m1m", "", "5M", "1e3s", [1], {"a": 1}, None]
)
def test_a_bad_duration_is_refused(tmp_path: Path, value: object) -> None:
    text = refused(tmp_path, {"instances": [instance(timeout=value)]})
    assert at(tmp_path, "instances[0].timeout") + "invalid duration" in text


@pytest.mark.parametrize("value", ["-5s", -5, "-1h30m"])
def test_a_negative_duration_is_refused(tmp_path: Path, value: object) -> None:
    text = refused(tmp_path, {"instances": [instance(undelivered_after=value)]})
    assert at(tmp_path, "instances[0].undelivered_after") in text and "must not be negative" in text


def test_a_zero_timeout_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"defaults": {"timeout": 0}, "instances": [instance()]})
    assert at(tmp_path, "defaults.timeout") + "must be greater than 0" in text


def test_a_window_over_90_days_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(window="91d")]})
    assert at(tmp_path, "instances[0].window") + "must be at most 90d" in text


def test_a_window_under_a_minute_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"defaults": {"window": "59s"}, "instances": [instance()]})
    assert at(tmp_path, "defaults.window") + "must be at least 1m" in text


def test_a_poll_interval_under_a_second_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(poll_interval="500ms")]})
    assert at(tmp_path, "instances[0].poll_interval") + "must be at least 1s" in text


@pytest.mark.parametrize(
    ("key", "document"),
    [("concurrency", {"concurrency": True}),
     ("defaults.max_messages", {"defaults": {"max_messages": True}}),
     ("defaults.poll_interval", {"defaults": {"poll_interval": True}}),
     ("instances[0].id_instance", {"id_instance": True}),
     ("instances[0].labels.team", {"labels": {"team": True}})],
)  # fmt: skip
def test_a_boolean_is_not_a_number(tmp_path: Path, key: str, document: dict[str, Any]) -> None:
    if "concurrency" in document or "defaults" in document:
        document = {**document, "instances": [instance()]}
    else:
        document = {"instances": [instance(**document)]}
    assert at(tmp_path, key) in refused(tmp_path, document)


@pytest.mark.parametrize("value", [0, -1, 1.5, "eight", None])
def test_concurrency_must_be_a_whole_number_of_at_least_one(tmp_path: Path, value: object) -> None:
    text = refused(tmp_path, {"concurrency": value, "instances": [instance()]})
    assert at(tmp_path, "concurrency") + "expected a whole number >= 1" in text


def test_max_messages_must_be_at_least_one(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(max_messages=0)]})
    assert at(tmp_path, "instances[0].max_messages") + "expected a whole number >= 1, got 0" in text


@pytest.mark.parametrize("value", ["", "   ", 5, ["a"]])
def test_a_state_file_must_be_a_path_or_null(tmp_path: Path, value: object) -> None:
    text = refused(tmp_path, {"state_file": value, "instances": [instance()]})
    assert at(tmp_path, "state_file") + "expected a file path or null" in text


def test_defaults_that_are_not_a_mapping_are_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"defaults": ["poll_interval"], "instances": [instance()]})
    assert at(tmp_path, "defaults") + "expected a mapping, got a list" in text


def test_an_instance_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(), "sales-bot"]})
    assert at(tmp_path, "instances[1]") + "expected a mapping, got a string" in text


def test_a_missing_name_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(name=...)]})
    assert at(tmp_path, "instances[0].name") + "missing" in text


@pytest.mark.parametrize("value", ["sales bot", "bot/1", "", None, 12, ["a"]])
def test_a_name_that_is_not_letters_digits_and_punctuation_is_refused(
    tmp_path: Path, value: object
) -> None:
    assert at(tmp_path, "instances[0].name") in refused(
        tmp_path, {"instances": [instance(name=value)]}
    )


def test_a_missing_id_instance_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(id_instance=...)]})
    assert at(tmp_path, "instances[0].id_instance") + "missing" in text


@pytest.mark.parametrize("value", ["abc", "12a", "", "-5", -5, 1.5, None, True, ["1"], "١٢٣"])
def test_an_id_instance_that_is_not_digits_is_refused(tmp_path: Path, value: object) -> None:
    text = refused(tmp_path, {"instances": [instance(id_instance=value)]})
    assert at(tmp_path, "instances[0].id_instance") + "expected digits" in text


def test_a_missing_token_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(api_token=...)]})
    assert (
        at(tmp_path, "instances[0].api_token") + "missing (give api_token or api_token_file)"
        in text
    )


def test_a_token_and_a_token_file_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    text = refused(tmp_path, {"instances": [instance(api_token_file="token")]})
    assert (
        at(tmp_path, "instances[0].api_token_file")
        + "give either api_token or api_token_file, not both"
        in text
    )


@pytest.mark.parametrize("value", ["", "  ", None])
def test_an_empty_token_is_refused(tmp_path: Path, value: object) -> None:
    text = refused(tmp_path, {"instances": [instance(api_token=value)]})
    assert at(tmp_path, "instances[0].api_token") + "must not be empty" in text


def test_a_token_that_is_not_a_string_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(api_token=123456789)]})
    assert (
        at(tmp_path, "instances[0].api_token") + "expected a string (quote the token), got a number"
        in text
    )
    assert "123456789" not in text


def test_a_token_with_characters_that_would_break_the_url_is_refused_unquoted(
    tmp_path: Path,
) -> None:
    text = refused(tmp_path, {"instances": [instance(api_token=TOKEN + "/x?")]})
    assert at(tmp_path, "instances[0].api_token") + "the token holds characters" in text


def test_a_missing_token_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(api_token=..., api_token_file="absent")]})
    assert (
        at(tmp_path, "instances[0].api_token_file")
        + f"cannot read {tmp_path / 'absent'}: no such file"
        in text
    )


def test_a_token_file_that_is_a_directory_is_refused_with_the_reason(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(api_token=..., api_token_file=str(tmp_path))]})
    assert (
        at(tmp_path, "instances[0].api_token_file") + f"cannot read {tmp_path}: is a directory"
        in text
    )


def unprivileged(action: Callable[[], str]) -> str:
    """``action()``, run without root's right to read any file: as root (CI), in a forked
    child that has become `nobody`; its result comes back through a pipe."""
    if os.geteuid() != 0:
        return action()
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's coverage is not collected
        try:
            os.close(reader)
            os.setgid(65534)
            os.setuid(65534)
            os.write(writer, action().encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        result = pipe.read().decode()
    os.waitpid(child, 0)
    return result


def test_a_token_file_without_read_permission_is_refused_with_the_reason() -> None:
    directory = Path(tempfile.mkdtemp())  # in /tmp, which `nobody` can reach
    try:
        directory.chmod(0o755)
        (directory / "token").write_text(TOKEN)
        (directory / "token").chmod(0)
        config = write(directory, {"instances": [instance(api_token=..., api_token_file="token")]},
                       mode=0o644)  # fmt: skip

        def load_it() -> str:
            try:
                load_config(str(config), {})
            except ConfigError as exc:
                return str(exc)
            return "accepted"

        text = unprivileged(load_it)
    finally:
        shutil.rmtree(directory)
    assert at(directory, "instances[0].api_token_file") in text and "permission denied" in text


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(" \n")
    text = refused(tmp_path, {"instances": [instance(api_token=..., api_token_file="token")]})
    assert (
        at(tmp_path, "instances[0].api_token_file") + f"{tmp_path / 'token'}: must not be empty"
        in text
    )


def test_a_token_file_with_wrong_content_is_refused_without_printing_it(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(f"token = {TOKEN}\n")
    text = refused(tmp_path, {"instances": [instance(api_token=..., api_token_file="token")]})
    assert at(tmp_path, "instances[0].api_token_file") in text and "token =" not in text


def test_a_token_file_path_that_is_not_a_string_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(api_token=..., api_token_file=None)]})
    assert at(tmp_path, "instances[0].api_token_file") + "expected a file path" in text


def test_a_duplicate_name_is_refused_naming_the_earlier_instance(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(), instance(id_instance=2)]})
    assert (
        at(tmp_path, "instances[1].name") + "duplicate name 'sales-bot' (also instances[0])" in text
    )


def test_a_duplicate_id_instance_is_refused_naming_the_earlier_instance(tmp_path: Path) -> None:
    document = {"instances": [instance(), instance(name="b", id_instance=1101000001)]}
    text = refused(tmp_path, document)
    assert (
        at(tmp_path, "instances[1].id_instance")
        + "duplicate id_instance '1101000001' (also instances[0])"
        in text
    )


def test_a_duplicate_is_found_even_when_the_first_instance_has_other_errors(
    tmp_path: Path,
) -> None:
    text = refused(tmp_path, {"instances": [instance(window="bad"), instance(id_instance=2)]})
    assert at(tmp_path, "instances[1].name") + "duplicate name" in text


def test_an_unset_variable_is_refused_by_name(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(api_token="${SALES_TOKEN}")]}, {"OTHER": "x"})
    assert (
        at(tmp_path, "instances[0].api_token") + "environment variable SALES_TOKEN is not set"
        in text
    )


def test_an_unset_variable_anywhere_is_refused_with_its_path(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(labels={"team": "${TEAM}"})]})
    assert at(tmp_path, "instances[0].labels.team") + "environment variable TEAM is not set" in text


def test_a_variable_without_a_closing_brace_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(api_url="https://${HOST")]}, {"HOST": "x"})
    assert at(tmp_path, "instances[0].api_url") + "'${' without a closing '}'" in text


def test_an_invalid_variable_name_is_refused_without_quoting_a_token(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(api_token="${" + TOKEN + "-x}")]})
    assert at(tmp_path, "instances[0].api_token") + "invalid ${VAR} reference" in text


@pytest.mark.parametrize("label", ["bad-name", "__reserved", "1st", "", "ünï"])
def test_an_invalid_label_name_is_refused(tmp_path: Path, label: str) -> None:
    text = refused(tmp_path, {"instances": [instance(labels={label: "x"})]})
    assert "not a valid Prometheus label name" in text
    assert text.startswith(at(tmp_path, "instances[0].labels.").rstrip(": "))


def test_an_invalid_label_name_is_named_in_the_key_path(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(labels={"bad-name": "x"})]})
    assert (
        at(tmp_path, "instances[0].labels.bad-name") + "not a valid Prometheus label name" in text
    )


@pytest.mark.parametrize("label", sorted(OWN_LABELS))
def test_a_label_the_exporter_uses_itself_is_refused(tmp_path: Path, label: str) -> None:
    text = refused(tmp_path, {"instances": [instance(labels={label: "x"})]})
    assert (
        at(tmp_path, f"instances[0].labels.{label}") + "clashes with a label the exporter sets"
        in text
    )


@pytest.mark.parametrize("value", [None, ["a"], {"a": "b"}, True])
def test_a_label_value_that_is_not_a_string_or_number_is_refused(
    tmp_path: Path, value: object
) -> None:
    text = refused(tmp_path, {"instances": [instance(labels={"team": value})]})
    assert at(tmp_path, "instances[0].labels.team") + "expected a string or number" in text


def test_labels_that_are_not_a_mapping_are_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(labels=["team"])]})
    assert at(tmp_path, "instances[0].labels") + "expected a mapping" in text


@pytest.mark.parametrize(
    "document",
    [{}, {"instances": []}, {"instances": "x"}, {"instances": None}, {"instances": {"a": 1}}],
    ids=["missing", "empty", "string", "null", "mapping"],
)
def test_instances_must_be_a_non_empty_list(tmp_path: Path, document: object) -> None:
    assert at(tmp_path, "instances") in refused(tmp_path, document)


@pytest.mark.parametrize(
    "url",
    ["ftp://x.example", "https://", "api.green-api.com", "https://x.example?a=1",
     "https://user:pass@x.example", "https://x.example:99999", "https://x .example", 42, None],
)  # fmt: skip
def test_an_api_url_that_is_not_http_of_a_host_is_refused(tmp_path: Path, url: object) -> None:
    text = refused(tmp_path, {"instances": [instance(api_url=url)]})
    assert at(tmp_path, "instances[0].api_url") + "expected an http:// or https:// URL" in text


@pytest.mark.parametrize(
    ("value", "key_path"),
    [([], "collect"), ("outgoing", "collect"), (None, "collect"), (["bogus"], "collect[0]"),
     ([1], "collect[0]"), (["outgoing", "${NOPE}"], "collect[1]")],
)  # fmt: skip
def test_a_bad_collect_list_is_refused(tmp_path: Path, value: object, key_path: str) -> None:
    text = refused(tmp_path, {"instances": [instance(collect=value)]})
    assert at(tmp_path, f"instances[0].{key_path}") in text


def test_a_collector_listed_twice_is_refused(tmp_path: Path) -> None:
    text = refused(
        tmp_path, {"defaults": {"collect": ["outgoing", "outgoing"]}, "instances": [instance()]}
    )
    assert (
        at(tmp_path, "defaults.collect[1]")
        + "'outgoing' is listed twice (also defaults.collect[0])"
        in text
    )


def test_an_unknown_collector_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(collect=["outgoing", "bogus"])]})
    assert at(tmp_path, "instances[0].collect[1]") + "unknown collector 'bogus'" in text


def test_every_documented_collector_is_accepted_in_request_order(tmp_path: Path) -> None:
    config = load(
        tmp_path, {"instances": [instance(collect=["incoming", "queue", "outgoing", "state"])]}
    )
    assert config.instances[0].settings.collect == ("outgoing", "state", "queue", "incoming")


def test_an_instance_collect_list_replaces_the_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, {"defaults": {"collect": ["outgoing", "state"]},
                             "instances": [instance(), instance(name="b", id_instance="2",
                                                                collect=["queue"])]})  # fmt: skip
    assert [i.settings.collect for i in config.instances] == [("outgoing", "state"), ("queue",)]


def test_each_collector_calls_its_method_and_only_journals_send_minutes(tmp_path: Path) -> None:
    [i] = load(
        tmp_path, {"instances": [instance(api_url="https://x.example", window="2h")]}
    ).instances
    base = "https://x.example/waInstance1101000001"
    assert i.method_url("state") == f"{base}/getStateInstance/{TOKEN}"
    assert i.method_url("queue") == f"{base}/getMessagesCount/{TOKEN}"
    assert i.method_url("incoming") == f"{base}/lastIncomingMessages/{TOKEN}"
    assert i.redacted_url("incoming") == f"{base}/lastIncomingMessages/<redacted>"
    params = {name: BY_NAME[name].params(i) for name in ("outgoing", "incoming", "state", "queue")}
    assert params["outgoing"] == params["incoming"] == {"minutes": "120"}
    assert params["state"] == params["queue"] == {}


def test_a_yaml_syntax_error_is_one_line_with_file_line_and_column(tmp_path: Path) -> None:
    text = refused(tmp_path, "instances:\n  - name: [unclosed\n    id_instance: 1\n")
    assert len(text.splitlines()) == 1
    assert text.startswith(f"{tmp_path / 'config.yaml'}: line ")
    assert "column" in text and "invalid YAML" in text and "Traceback" not in text


def test_a_yaml_value_that_cannot_be_constructed_is_one_line(tmp_path: Path) -> None:
    text = refused(tmp_path, "instances: 2024-02-30\n")
    assert text.startswith(f"{tmp_path / 'config.yaml'}: invalid YAML: ")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_a_document_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    assert "expected a mapping at the top level" in refused(tmp_path, text)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    assert "the configuration is empty" in refused(tmp_path, "")


def test_a_missing_file_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("/nonexistent/config.yaml", {})
    assert str(caught.value) == (
        "/nonexistent/config.yaml: cannot read the configuration file: no such file"
    )


def test_a_directory_given_as_the_file_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(str(tmp_path), {})
    assert str(caught.value) == f"{tmp_path}: cannot read the configuration file: is a directory"


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"instances: \xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), {})
    assert str(caught.value) == f"{path}: the configuration file is not UTF-8 text"


def test_config_error_joins_its_errors_one_per_line() -> None:
    error = ConfigError(["a: x: one", "a: y: two"])
    assert error.errors == ("a: x: one", "a: y: two")
    assert str(error) == "a: x: one\na: y: two"


# --- secrets -----------------------------------------------------------------------------


def test_the_token_appears_in_no_repr_str_or_summary(tmp_path: Path) -> None:
    config = load(tmp_path, {"instances": [instance()]})
    [i] = config.instances
    for text in (repr(config), str(config), repr(i), str(i), config.summary(), i.redacted_url()):
        assert TOKEN not in text
    assert TOKEN in i.journal_url()


def test_secrets_lists_every_token(tmp_path: Path) -> None:
    config = load(tmp_path, {"instances": [instance(), instance(name="b", id_instance=2,
                                                                api_token="other-token")]})  # fmt: skip
    assert config.secrets() == (TOKEN, "other-token")


def test_no_error_message_quotes_the_token_whatever_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + " trailing junk")
    documents: list[Any] = [
        {"instances": [instance(bogus=TOKEN, api_url=TOKEN, window=TOKEN)]},
        {"instances": [instance(api_token=[TOKEN])]},
        {"instances": [instance(api_token={"value": TOKEN})]},
        {"instances": [instance(api_token=TOKEN + " x")]},
        {"instances": [instance(api_token="${T}")]},  # T holds a token with a bad character
        {"instances": [instance(api_token=..., api_token_file="token")]},
        {"instances": [instance(api_token_file="token")]},
    ]
    for document in documents:
        refused(tmp_path, document, {"T": TOKEN + "/"})  # refused() asserts TOKEN is absent


def test_the_summary_names_every_setting_and_the_token_source(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    config = load(tmp_path, {"concurrency": 3, "instances": [
        instance(labels={"team": "sales"}, poll_interval="90s"),
        instance(name="b", id_instance=2, api_token=..., api_token_file="token"),
    ]})  # fmt: skip
    summary = config.summary()
    for expected in (f"configuration: {tmp_path / 'config.yaml'}", "concurrency: 3",
                     "state_file: none", "name: sales-bot", "id_instance: 1101000001",
                     "api_url: https://api.green-api.com", "poll_interval: 1m30s", "window: 1d",
                     "timeout: 10s", "undelivered_after: 5m", "max_messages: 5000",
                     "labels: team=sales", "token from: api_token\n",
                     f"token from: api_token_file {tmp_path / 'token'}"):  # fmt: skip
        assert expected in summary


def test_a_world_readable_file_with_inline_tokens_gets_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, {"instances": [instance()]}, mode=0o644)
    [warning] = load_config(str(path), {}).warnings
    assert warning == (
        f"{path}: is readable by all users and holds inline api_token values; "
        "chmod 600 it or use api_token_file/${VAR}"
    )


def test_a_private_file_with_inline_tokens_gets_no_warning(tmp_path: Path) -> None:
    path = write(tmp_path, {"instances": [instance()]}, mode=0o600)
    assert load_config(str(path), {}).warnings == ()


def test_tokens_from_variables_or_files_get_no_permission_warning(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    path = write(tmp_path, {"instances": [
        instance(api_token="${T}"),
        instance(name="b", id_instance=2, api_token=..., api_token_file="token"),
    ]}, mode=0o644)  # fmt: skip
    assert load_config(str(path), {"T": TOKEN}).warnings == ()


# --- other warnings ----------------------------------------------------------------------


def test_a_poll_interval_that_would_exhaust_the_stated_quota_is_warned_about(
    tmp_path: Path,
) -> None:
    config = load(tmp_path, {"instances": [
        instance(monthly_quota=1000),
        instance(name="b", id_instance=2, monthly_quota=1000, poll_interval="1h"),
    ]})  # fmt: skip
    [warning] = config.warnings
    assert warning.startswith(f"{tmp_path / 'config.yaml'}: instances[0]: poll_interval 1m makes "
                              "about 43200 journal calls a month, over monthly_quota 1000")  # fmt: skip
    assert "use poll_interval 43m12s or more" in warning


def test_undelivered_after_not_shorter_than_the_window_is_warned_about(tmp_path: Path) -> None:
    config = load(tmp_path, {"instances": [instance(window="1h", undelivered_after="2h")]})
    [warning] = config.warnings
    assert warning.startswith(f"{tmp_path / 'config.yaml'}: instances[0]: undelivered_after 2h")


# --- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("90s", 90), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("1d", 86400), ("1w", 604800),
     ("1y", 31536000), ("500ms", 0.5), ("1m30s500ms", 90.5), (" 5m ", 300), ("1.5h", 5400),
     (42, 42), (0.25, 0.25), ("7", 7), ("0", 0), ("0s", 0)],
)  # fmt: skip
def test_durations_are_read_prometheus_style_or_as_seconds(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["abc", "5", "", "1h30", "5m1h", "1s1s", "-5s", -1, float("nan"), float("inf"),
              "inf", True, None, [5], 10**400, "1e999"],
)  # fmt: skip
def test_a_bad_duration_raises_a_readable_value_error(value: object) -> None:
    if value == "5":
        assert parse_duration(value) == 5  # a numeric string is fine: the control case
        return
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(90, "1m30s"), (86400, "1d"), (0, "0s"), (5400, "1h30m"), (0.5, "0.5s"), (60.5, "1m0.5s"),
     (90061, "1d1h1m1s"), (604800, "7d")],
)  # fmt: skip
def test_durations_are_formatted_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**9))
def test_a_formatted_duration_parses_back_to_itself(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


# --- declarations: each setting declared once drives all of the above ---------------------

# For every setting of `defaults`: a value other than the built-in default as written in a
# file, as parsed, and as --check-config shows it. A new setting needs a line here; the tests
# below then check it is read in both places, inherited, overridden and summarised.
EXAMPLES: dict[str, tuple[object, object, str]] = {
    "api_url": ("https://7105.api.greenapi.com/", "https://7105.api.greenapi.com",
                "https://7105.api.greenapi.com"),
    "poll_interval": ("2m", 120, "2m"),
    "window": ("6h", 21600, "6h (?minutes=360)"),
    "timeout": ("3s", 3, "3s"),
    "undelivered_after": ("15m", 900, "15m"),
    "max_messages": (100, 100, "100"),
    "resync_interval": ("0", 0.0, "0s"),
    "collect": (["state", "outgoing"], ("outgoing", "state"), "[outgoing, state]"),
    "monthly_quota": (100000, 100000, "100000 (about 21600 journal calls a month)"),
}  # fmt: skip


def as_written(value: object) -> object:
    """A parsed value as a file would write it (YAML has lists, not tuples)."""
    return list(value) if isinstance(value, tuple) else value


def test_every_setting_has_an_example_here() -> None:
    assert sorted(EXAMPLES) == sorted(s.key for s in SETTINGS)


@pytest.mark.parametrize("key", sorted(EXAMPLES))
def test_every_setting_is_inherited_from_defaults_unless_the_instance_sets_it(
    tmp_path: Path, key: str
) -> None:
    written, parsed, _ = EXAMPLES[key]
    built_in = getattr(Settings(), key)
    config = load(tmp_path, {"defaults": {key: written}, "instances": [
        instance(), instance(name="b", id_instance=2, **{key: as_written(built_in)}),
    ]})  # fmt: skip
    assert [getattr(i.settings, key) for i in config.instances] == [parsed, built_in]


@pytest.mark.parametrize("key", sorted(EXAMPLES))
def test_every_setting_is_checked_in_defaults_and_per_instance(tmp_path: Path, key: str) -> None:
    wrong = {"a": "mapping"}  # no setting takes one
    text = refused(tmp_path, {"defaults": {key: wrong}, "instances": [instance(**{key: wrong})]})
    assert at(tmp_path, f"defaults.{key}") in text
    assert at(tmp_path, f"instances[0].{key}") in text


def test_the_summary_shows_every_setting_of_an_instance(tmp_path: Path) -> None:
    entry = instance(**{key: written for key, (written, _, _) in EXAMPLES.items()})
    lines = load(tmp_path, {"instances": [entry]}).summary().splitlines()
    for key, (_, _, shown) in EXAMPLES.items():
        assert f"    {key}: {shown}" in lines


def test_the_settings_table_has_a_row_for_every_key_of_the_file() -> None:
    rows = settings_table().splitlines()[2:]
    keys = [row.split("|")[1].strip(" `") for row in rows]
    assert sorted(keys) == sorted([*EXAMPLES, "concurrency", "state_file", "name", "id_instance",
                                   "api_token", "api_token_file", "labels"])  # fmt: skip


def test_the_settings_table_states_the_declared_bounds_and_defaults() -> None:
    rows = {row.split("|")[1].strip(" `"): row for row in settings_table().splitlines()[2:]}
    assert (
        "| `defaults`, instance | duration at least 1s, at most 90d | `1m` |"
        in rows["poll_interval"]
    )
    assert "| duration at least 1m, at most 90d | `1d` |" in rows["window"]
    assert "| top level | whole number, at least 1 | `8` |" in rows["concurrency"]
    assert "| instance |" in rows["name"] and "| required |" in rows["name"]


def test_the_readme_settings_table_is_the_one_the_code_declares() -> None:
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
    assert start in readme and end in readme, "README.md lacks the settings-table markers"
    table = readme.split(start, 1)[1].split(end, 1)[0].strip()
    assert table == settings_table(), "paste the output of: python -m exporter.config"


# --- data classes ------------------------------------------------------------------------


def test_instance_configs_are_frozen(tmp_path: Path) -> None:
    [i] = load(tmp_path, {"instances": [instance()]}).instances
    with pytest.raises(AttributeError):
        i.name = "other"  # type: ignore[misc]


def test_an_instance_config_can_be_built_directly() -> None:
    i = InstanceConfig(name="a", id_instance="1", api_token="t",
                       settings=Settings(api_url="http://x", window=120))  # fmt: skip
    assert (i.window_minutes, i.settings.collect, i.token_source) == (2, ("outgoing",), "api_token")
    assert Config(source="c.yaml", instances=(i,)).concurrency == 8


# --- property: any document is a config or a ConfigError ----------------------------------

KEYS = ["defaults", "concurrency", "state_file", "instances", "name", "id_instance", "api_token",
        "api_token_file", "api_url", "poll_interval", "window", "timeout", "undelivered_after",
        "max_messages", "labels", "collect", "monthly_quota", "team", "x"]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "5m",
            "${X}",
            "${NOPE}",
            "$$",
            "${",
            "https://a.b/v3",
            "1101",
            "outgoing",
            "sales",
            TOKEN,
            "/nonexistent",
            "1h30m",
            "-1s",
        ]
    )
)
documents = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), children, max_size=6)
    ),
    max_leaves=20,
)
# Mostly-valid documents, so that the property also reaches the end of the validation.
entries = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b"]), "id_instance": st.sampled_from([1, "2", "x"]),
     "api_token": st.sampled_from([TOKEN, "${X}", ""])},
    optional={key: SCALARS for key in ["api_url", "poll_interval", "window", "timeout",
                                       "undelivered_after", "max_messages", "monthly_quota"]}
    | {"labels": st.dictionaries(st.sampled_from(["team", "job", "__x"]), SCALARS, max_size=2),
       "collect": st.lists(st.sampled_from(["outgoing", "state", 1]), max_size=2)},
)  # fmt: skip
nearly_valid = st.fixed_dictionaries(
    {"instances": st.lists(entries, min_size=1, max_size=3)},
    optional={"concurrency": SCALARS, "state_file": SCALARS,
              "defaults": st.dictionaries(st.sampled_from(KEYS), SCALARS, max_size=3)},
)  # fmt: skip


def check_config_or_error(document: object) -> None:
    try:
        config = parse_config(document, "config.yaml", {"X": "1"})
    except ConfigError as exc:
        assert exc.errors
        for line in exc.errors:
            assert line.startswith("config.yaml: ") and "\n" not in line
            assert TOKEN not in line
    else:
        assert config.instances and TOKEN not in config.summary() + repr(config)


@settings(max_examples=80, deadline=None)
@given(documents)
def test_any_document_is_a_config_or_a_config_error(document: object) -> None:
    check_config_or_error(document)


@settings(max_examples=60, deadline=None)
@given(nearly_valid)
def test_any_nearly_valid_document_is_a_config_or_a_config_error(document: object) -> None:
    check_config_or_error(document)


def test_a_token_pasted_under_another_key_is_not_quoted_even_cut_short(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(api_url=TOKEN)]})
    assert TOKEN[:20] not in text and "instances[0].api_url" in text


def test_a_token_pasted_as_the_token_file_is_not_quoted(tmp_path: Path) -> None:
    text = refused(tmp_path, {"instances": [instance(api_token=..., api_token_file=TOKEN)]})
    assert TOKEN[:20] not in text
    assert "it looks like a token, not a path" in text
