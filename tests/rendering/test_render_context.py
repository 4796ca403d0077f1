"""build_context: tag choice, vars over defaults, secrets only for provisioned tenants, input checks."""

from dataclasses import replace

import pytest

from ccp.rendering.context import build_context, choose_tag, managed_env_values
from ccp.rules import check_tag as validate_tag


@pytest.mark.parametrize("tag", ["latest", "v2.10.3", "2024.05.01-rc_1", "_x", "a" * 128])
def test_valid_tags_pass(tag):
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a" * 129, "v1 2", "v1;rm", "v1/2", "v1:2", "tag\n", None, 3])
def test_invalid_tags_raise(tag):
    with pytest.raises(ValueError, match="invalid image tag"):
        validate_tag(tag)


def test_tag_precedence_proposed_then_instance_then_default(provisioned, registered):
    instance, _ = provisioned
    assert choose_tag(instance, "v3.0.0") == "v3.0.0"
    assert choose_tag(instance) == "v2.10.3"
    assert choose_tag(registered[0], default_tag="stable") == "stable"
    with pytest.raises(ValueError):
        choose_tag(registered[0], default_tag="bad tag")


def test_instance_vars_override_set_defaults_and_are_strings(provisioned):
    instance, secrets = provisioned
    context = build_context(instance, secrets=secrets)
    assert context["vars"]["TZ"] == "America/Toronto"
    assert context["vars"]["LOG_MAX_SIZE"] == "10m"  # set default
    assert context["vars"]["FEATURE_DONATIONS"] == "true" and context["vars"]["WORKER_CONCURRENCY"] == "8"
    assert context["tenant"] == {
        "slug": "riverside", "name": "Riverside Tenants' Union", "domain": "riverside.example.org",
        "is_registered": False, "compose_project": "riverside",
        "health_urls": ["https://riverside.example.org/", "https://api.riverside.example.org/healthz"],
    }
    assert context["template_set"] == {"name": "default", "version": "1.0.0"}


def test_secrets_are_used_only_for_provisioned_tenants_and_only_declared_ones(provisioned, registered):
    instance, secrets = provisioned
    context = build_context(instance, secrets={**secrets, "UNDECLARED": "x"})
    assert context["secrets"]["POSTGRES_PASSWORD"] == "test-postgres-0011"
    assert "UNDECLARED" not in context["secrets"]
    reg_context = build_context(registered[0], secrets={"POSTGRES_PASSWORD": "must-not-appear"})
    assert dict(reg_context["secrets"]) == {}


def test_secret_in_plain_vars_is_refused(provisioned):
    instance, _ = provisioned
    leaky = replace(instance, vars={"POSTGRES_PASSWORD": "oops"})
    with pytest.raises(ValueError, match="POSTGRES_PASSWORD are secrets") as err:
        build_context(leaky)
    assert "oops" not in str(err.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"slug": "Bad Slug"}, "invalid tenant slug"),
        ({"domain": "not a domain"}, "invalid domain"),
        ({"compose_project": "UPPER"}, "invalid compose project"),
        ({"vars": {"X": "line1\nline2"}}, "'X' contains a newline"),
        ({"vars": {"bad-name": "x"}}, "invalid var name"),
        ({"vars": {"X": ["list"]}}, "must be a string"),
        ({"health_urls": [1]}, "health_urls"),
        ({"image_tag": "v1 2"}, "invalid image tag"),
    ],
)
def test_bad_instance_data_raises_without_echoing_values(provisioned, changes, message):
    instance, secrets = provisioned
    with pytest.raises(ValueError, match=message) as err:
        build_context(replace(instance, **changes), secrets=secrets)
    assert "line1" not in str(err.value)


def test_secret_values_with_control_characters_are_refused_by_name(provisioned):
    instance, secrets = provisioned
    with pytest.raises(ValueError, match="'JWT_SECRET' contains a newline") as err:
        build_context(instance, secrets={**secrets, "JWT_SECRET": "abc\ndef"})
    assert "abc" not in str(err.value)


def test_managed_env_values_carry_the_chosen_tag(registered):
    assert managed_env_values(registered[0], "v9.1.0") == {"IMAGE_TAG": "v9.1.0"}
    assert managed_env_values(registered[0]) == {"IMAGE_TAG": "latest"}
