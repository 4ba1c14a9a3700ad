"""protocol.files: bounded, non-blocking reads and atomic writes of files other processes wrote."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isaacgymenvs import protocol
from tests.conftest import call_with_timeout

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def deep(depth: int, opener: str) -> str:
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


@FUZZ
@given(depth=st.integers(min_value=17, max_value=200_000), kind=st.sampled_from(["[", "{", "mixed"]))
def test_deep_nesting_is_refused_before_parsing(run, depth, kind):
    if kind == "mixed":
        text = '{"mode": ' + "[{" * (depth // 2) + '"x"' + "}]" * (depth // 2) + "}"
    else:
        text = deep(depth, kind)
    raw = text.encode()
    protocol.state_file(run).write_bytes(raw)
    state, warning = call_with_timeout(lambda: protocol.read_state(run))
    expected = "nested deeper than 16 levels" if len(raw) <= protocol.JSON_MAX_BYTES else "more than the 65536 allowed"
    assert state is None and expected in warning


def test_read_bounded_refuses_links_fifos_and_big_files_without_blocking(tmp_path):
    path = tmp_path / "f.json"
    os.mkfifo(path)
    with pytest.raises(protocol.UnreadableFile, match="not a regular file"):
        call_with_timeout(lambda: protocol.read_bounded(path, 100))
    path.unlink()
    target = tmp_path / "target.json"
    target.write_text("{}")
    path.symlink_to(target)
    with pytest.raises(protocol.UnreadableFile, match="symbolic link, which is not followed"):
        protocol.read_bounded(path, 100)
    path.unlink()
    path.write_bytes(b"x" * 101)
    with pytest.raises(protocol.UnreadableFile, match="101 bytes, more than the 100 allowed"):
        protocol.read_bounded(path, 100)
    with pytest.raises(FileNotFoundError):
        protocol.read_bounded(tmp_path / "absent", 100)
    assert protocol.read_bounded(target, 100) == b"{}"


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"\xff\xfe", "is not UTF-8 text"),
        (b"{", "is not valid JSON"),
        (b"[1, 2]", "is not a JSON object"),
        (b"[" * 17 + b"]" * 17, "is nested deeper than 16 levels"),
    ],
)
def test_parse_json_object_says_why_it_refuses(raw, reason):
    assert protocol.parse_json_object(raw, "x.json") == (None, f"x.json {reason}")


def test_json_depth_ignores_brackets_inside_strings():
    assert protocol.json_depth('{"a": "[[[[{{{{", "b": [1, {"c": 2}]}') == 3
    assert protocol.json_depth('{"a": "\\"[[["}') == 1


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "x.json"
    protocol.atomic_write_bytes(path, b"old")

    def torn(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        protocol.atomic_write(path, torn)
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]  # the temp file is gone too
    protocol.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and list(tmp_path.iterdir()) == [path]


def test_first_line_is_one_short_line():
    assert protocol.first_line(ValueError("a\nb")) == "a"
    assert protocol.first_line(ValueError("")) == "ValueError"
    assert len(protocol.first_line(ValueError("x" * 500))) == 120
