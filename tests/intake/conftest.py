"""Fixtures for release intake tests: a fake registry on a real 127.0.0.1 socket (tests/intake/fake_registry.py)."""

from tests.intake.fake_registry import registry_fixture  # noqa: F401 - provides the `fake_registry` fixture
