"""redact() and read_small_file(): where tokens are scrubbed from text, and small files read."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from exporter.redaction import UnreadableFile, read_small_file, redact
from tests.test_config import unprivileged

TOKEN = "d0c5e7a1b2c3d4e5f6a7b8c9SECRETTOKENd1e2f3a4b5c6d7e8f9"


def test_a_known_secret_is_replaced_wherever_it_appears() -> None:
    assert redact(f"token={TOKEN}; again {TOKEN}", [TOKEN]) == (
        "token=<redacted>; again <redacted>"
    )


def test_a_token_shaped_url_path_segment_is_replaced_even_when_unknown() -> None:
    text = "GET https://x.example/waInstance1101/getStateInstance/abc123?x=1 failed"
    assert (
        redact(text)
        == "GET https://x.example/waInstance1101/getStateInstance/<redacted>?x=1 failed"
    )


def test_a_secret_that_contains_another_is_replaced_whole() -> None:
    assert redact(f"[{TOKEN}]", [TOKEN[:10], TOKEN]) == "[<redacted>]"


def test_secrets_shorter_than_the_minimum_length_are_left_alone() -> None:
    assert redact(f"t is short, {TOKEN} is not", ["t", TOKEN], min_length=8) == (
        "t is short, <redacted> is not"
    )


def test_an_empty_secret_changes_nothing() -> None:
    assert redact("plain text", ["", ""]) == "plain text"


def test_redacting_twice_gives_the_same_text() -> None:
    once = redact(f"/waInstance1/lastOutgoingMessages/{TOKEN} and {TOKEN}", [TOKEN])
    assert redact(once, [TOKEN]) == once


def test_a_small_file_is_read_as_text(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("héllo\n")
    assert read_small_file(str(tmp_path / "token"), limit=7) == "héllo\n"  # 7 bytes


def unreadable_reason(path: Path, limit: int = 1024) -> str:
    with pytest.raises(UnreadableFile) as caught:
        read_small_file(str(path), limit)
    return str(caught.value)


def test_a_missing_file_is_no_such_file(tmp_path: Path) -> None:
    assert unreadable_reason(tmp_path / "absent") == "no such file"


def test_a_directory_is_a_directory(tmp_path: Path) -> None:
    assert unreadable_reason(tmp_path) == "is a directory"


def test_binary_content_is_not_utf8_text_and_is_not_quoted(tmp_path: Path) -> None:
    (tmp_path / "token").write_bytes(b"\xff\xfe" + TOKEN.encode())
    assert unreadable_reason(tmp_path / "token") == "not UTF-8 text"


def test_a_file_over_the_limit_is_too_large(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("x" * 11)
    assert unreadable_reason(tmp_path / "token", limit=10) == "too large (over 10 bytes)"


def test_a_file_without_read_permission_is_permission_denied() -> None:
    handle, name = tempfile.mkstemp()  # in /tmp, which `nobody` can reach
    os.write(handle, TOKEN.encode())
    os.close(handle)
    os.chmod(name, 0)

    def reason() -> str:
        try:
            read_small_file(name, 1024)
        except UnreadableFile as exc:
            return str(exc)
        return "read"

    try:
        assert unprivileged(reason) == "permission denied"
    finally:
        os.unlink(name)
