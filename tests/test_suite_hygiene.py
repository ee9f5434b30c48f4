"""The suite itself must not fill the disk: a passing test's temporary folder is removed when the test ends."""

from pathlib import Path

import pytest

_SEEN: dict[str, Path] = {}


def test_a_passing_test_leaves_a_folder_behind_only_until_it_ends(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\0" * 1024)
    _SEEN["first"] = tmp_path


def test_the_previous_passing_tests_folder_is_gone(request: pytest.FixtureRequest) -> None:
    assert request.config.getini("tmp_path_retention_policy") == "failed"
    if "first" not in _SEEN:
        pytest.skip("run together with the test before it (e.g. -k hygiene)")
    assert not _SEEN["first"].exists(), "a passing test's tmp_path survived it: the suite would fill the disk"
