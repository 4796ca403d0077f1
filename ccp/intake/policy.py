"""The tag policy of a receiver: which tags may be released, which one is newest, and what a downgrade is.

Versions: a tag is a version when it reads `[v]MAJOR[.MINOR[.PATCH]][-PRERELEASE]` (`v2`, `1.4`, `v1.2.3-rc.1`);
missing parts are 0. Ranges are npm-style, as the `semantic_version` library's NpmSpec reads them (`>=1.2 <2`,
`^1.4`, `~2.3`, `1.x`, `>=1 <2 || ^3`): a pre-release matches only a range that names one of its own
major.minor.patch (so `^1.4` never picks `2.0.0-rc.1`). `semantic_version` is chosen over `semver` (no ranges, only
single comparisons) and `packaging` (PEP 440, not tag-shaped): npm ranges are what registries' users write and
what Flux's image policies use.

Order of checks for a tag (the first that fails is the reason): include regex, exclude regex, a version at all
(only when a range is set), inside the range. Regexes are matched in full against the tag (`fullmatch`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import semantic_version

VERSION = re.compile(r"v?(0|[1-9][0-9]{0,8})(?:\.(0|[1-9][0-9]{0,8}))?(?:\.(0|[1-9][0-9]{0,8}))?"
                     r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?")
MAX_PATTERN = 200


class PolicyInvalid(ValueError):
    """A policy field does not parse; `field` names it (semver_range, tag_include, tag_exclude)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def version_of(tag: str | None) -> semantic_version.Version | None:
    """The version a tag stands for, or None when the tag is not version-shaped (`latest`, `main-abc123`)."""
    match = VERSION.fullmatch(tag or "")
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    pre_parts = tuple(pre.split(".")) if pre else ()
    if any(part.isdigit() and part != "0" and part.startswith("0") for part in pre_parts):
        return None  # semver forbids leading zeros in numeric pre-release parts
    return semantic_version.Version(major=int(major), minor=int(minor or 0), patch=int(patch or 0),
                                    prerelease=pre_parts)


def newer(a: str | None, b: str | None) -> bool | None:
    """Whether tag `a` is a higher version than tag `b`; None when either is not a version (cannot tell)."""
    va, vb = version_of(a), version_of(b)
    if va is None or vb is None:
        return None
    return va > vb


@dataclass(frozen=True)
class TagPolicy:
    """A receiver's tag policy; build it with `TagPolicy.of(...)`, which checks every field."""

    semver_range: str | None = None
    include: str | None = None
    exclude: str | None = None

    @classmethod
    def of(cls, semver_range: str | None, include: str | None, exclude: str | None) -> "TagPolicy":
        """A policy from its three optional fields ('' = unset); raises PolicyInvalid naming the bad field."""
        policy = cls(semver_range or None, include or None, exclude or None)
        if policy.semver_range:
            if len(policy.semver_range) > MAX_PATTERN:
                raise PolicyInvalid("semver_range", f"at most {MAX_PATTERN} characters")
            try:
                semantic_version.NpmSpec(policy.semver_range)
            except ValueError:
                raise PolicyInvalid("semver_range", f"not an npm-style version range: {policy.semver_range!r} "
                                    "(e.g. '>=1.2 <2', '^1.4', '~2.3', '1.x')") from None
        for name, pattern in (("tag_include", policy.include), ("tag_exclude", policy.exclude)):
            if pattern is None:
                continue
            if len(pattern) > MAX_PATTERN:
                raise PolicyInvalid(name, f"at most {MAX_PATTERN} characters")
            try:
                re.compile(pattern)
            except (re.error, OverflowError, RecursionError) as exc:
                raise PolicyInvalid(name, f"not a regular expression: {exc}") from None
        return policy

    def refuses(self, tag: str) -> str | None:
        """Why `tag` is outside the policy, or None when the policy allows it."""
        if self.include and not re.fullmatch(self.include, tag):
            return f"tag {tag} does not match the include pattern {self.include}"
        if self.exclude and re.fullmatch(self.exclude, tag):
            return f"tag {tag} matches the exclude pattern {self.exclude}"
        if self.semver_range:
            version = version_of(tag)
            if version is None:
                return f"tag {tag} is not a version (the policy has the range {self.semver_range})"
            if version not in semantic_version.NpmSpec(self.semver_range):
                return f"tag {tag} is outside the range {self.semver_range}"
        return None

    def best(self, tags) -> str | None:
        """The highest version among the allowed `tags` (ties: the shorter spelling, then the first), or None."""
        allowed = [(version_of(t), t) for t in tags if self.refuses(t) is None]
        allowed = [(v, t) for v, t in allowed if v is not None]
        if not allowed:
            return None
        return max(allowed, key=lambda item: (item[0], -len(item[1])))[1]
