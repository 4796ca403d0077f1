"""The tag policy: versions read from tags, npm-style ranges, include/exclude patterns, the newest allowed tag, and
what counts as newer (a downgrade)."""

from __future__ import annotations

import pytest

from ccp.intake.policy import PolicyInvalid, TagPolicy, newer, version_of


@pytest.mark.parametrize("tag, version", [
    ("v1.2.3", "1.2.3"), ("1.2.3", "1.2.3"), ("v2", "2.0.0"), ("1.4", "1.4.0"), ("v1.2.3-rc.1", "1.2.3-rc.1"),
    ("latest", None), ("main-abc123", None), ("v1.2.3.4", None), ("01.2.3", None), ("1.2.3-rc.01", None),
    ("", None), (None, None),
])
def test_versions_read_from_tags(tag, version):
    assert (str(version_of(tag)) if version_of(tag) else None) == version


@pytest.mark.parametrize("a, b, expected", [
    ("v2", "v1", True), ("v1.10.0", "v1.9.0", True), ("v1.2.3", "v1.2.3-rc.1", True), ("v1", "v1.0.0", False),
    ("v1", "v2", False), ("latest", "v1", None), ("v1", None, None),
])
def test_newer(a, b, expected):
    assert newer(a, b) is expected


def test_range_include_and_exclude():
    policy = TagPolicy.of("^1.4", r"v.*", r".*-rc\..*")
    assert policy.refuses("v1.4.2") is None and policy.refuses("v1.9.0") is None
    assert "outside the range" in policy.refuses("v2.0.0")
    assert "include pattern" in policy.refuses("1.5.0")
    assert "exclude pattern" in policy.refuses("v1.6.0-rc.1")
    assert "not a version" in policy.refuses("vnext")
    assert "outside the range" in policy.refuses("v1.7.0-beta")  # a pre-release only in a range naming it


def test_without_a_range_any_tag_passes_the_patterns():
    policy = TagPolicy.of(None, "", r"latest|.*-debug")
    assert policy.refuses("nightly-2026-01-01") is None
    assert policy.refuses("latest") and policy.refuses("v1-debug")


def test_the_best_tag_is_the_highest_allowed_version():
    policy = TagPolicy.of(">=1.0.0 <3", None, None)
    tags = ["latest", "v1.0.0", "v2.9.1", "v2.10.0", "v3.0.0", "v2.10.0-rc.1", "2.10.0", "broken"]
    assert policy.best(tags) == "2.10.0"  # v2.10.0 and 2.10.0 are the same version: the shorter spelling
    assert TagPolicy.of("^5", None, None).best(tags) is None


@pytest.mark.parametrize("fields, field", [
    (("not a range", None, None), "semver_range"), ((">=1 <<2", None, None), "semver_range"),
    ((None, "([", None), "tag_include"), ((None, None, "*"), "tag_exclude"),
    (("1" * 201, None, None), "semver_range"),
])
def test_invalid_policies_name_their_field(fields, field):
    with pytest.raises(PolicyInvalid) as caught:
        TagPolicy.of(*fields)
    assert caught.value.field == field
