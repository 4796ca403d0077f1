"""One tenant rulebook: what the instances service saves, rendering accepts; refused values change nothing.

Covers issue #11 class 4 (empty domain, 64-100 character compose projects and trailing newlines were saved and then
refused by every render) and class 3 (credentials in agent URLs), through the CLI, the service and rendering.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ccp import rules
from ccp.rendering.context import build_context
from ccp.rendering.sets import load_template_set


@pytest.mark.parametrize("value", ["", "a" * 64, "acme\n", "Acme", "-acme", "ac me", "acme\u0661", "\uff41cme"])
def test_slug_and_project_refuse_what_compose_would_not_take(value):
    with pytest.raises(rules.RuleError):
        rules.check_project(value)
    with pytest.raises(rules.RuleError):
        rules.check_slug(value)


@pytest.mark.parametrize("value", ["", "acme.example.com\n", "Acme.Example.com", "a..b", "-a.com", "a" * 254,
                                   "xn--\u00e9.com"])
def test_domain_is_required_and_a_dns_name(value):
    with pytest.raises(rules.RuleError):
        rules.check_domain(value)


@pytest.mark.parametrize("url", ["http://user:pw@host:9", "https://user@host", "http://:pw@host", "ftp://host",
                                 "http://host:99999", "http://h\u00f6st", "http://host/\n", "http://"])
def test_urls_refuse_credentials_and_non_http(url):
    with pytest.raises(rules.RuleError) as err:
        rules.check_http_url(url)
    assert "pw" not in str(err.value)


@pytest.mark.parametrize("text", ["1", "2147483647", "0042"])
def test_parse_id_takes_ascii_ids_in_the_column_range(text):
    assert rules.parse_id(text) == int(text)


@pytest.mark.parametrize("text", ["0", "2147483648", "99999999999", "\u0661", "\u00b2", "\u2460", "\uff11", " 1",
                                  "1_0", "+1", "-1", ""])
def test_parse_id_refuses_everything_else(text):
    assert rules.parse_id(text) is None


@pytest.mark.parametrize("args, field", [
    (["acme", "--driver", "local", "--install-dir", "/srv/acme"], "domain"),  # no --domain
    (["acme", "--domain", "acme.test", "--driver", "local", "--install-dir", "/srv/acme", "--project", "p" * 64],
     "compose_project"),
    (["acme", "--domain", "acme.test\n", "--driver", "local", "--install-dir", "/srv/acme"], "domain"),
    (["acme", "--domain", "acme.test", "--driver", "local", "--install-dir", "/srv/acme", "--name", "A\nB"], "name"),
    (["acme", "--domain", "acme.test", "--agent-url", "http://u:secret-pw@127.0.0.1:9", "--agent-key-id", "ccp",
      "--agent-key-stdin"], "agent_url"),
    (["acme", "--domain", "acme.test", "--driver", "local", "--install-dir", "/srv/acme", "--var", "X=a\tb\rc"],
     "vars"),
])
def test_cli_refuses_what_rendering_would_refuse(app, db, args, field):
    from ccp.models import AuditEvent, Instance

    from ccp.cli import main

    result = app.test_cli_runner().invoke(main, ["instance", "add", *args], input="k" * 32 + "\n")
    assert result.exit_code != 0 and field in result.output, result.output
    assert "secret-pw" not in result.output
    assert db.session.query(Instance).count() == 0 and db.session.query(AuditEvent).count() == 0


# A valid instance with, most of the time, one field swapped for a value from the edge of its rule (a trailing
# newline, an over-long project, an empty domain, Unicode look-alikes...): whatever the service saves must render.
_texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=70)
_edges = st.one_of(_texts, st.sampled_from(["", " ", "\n", "x\n", "p" * 63, "p" * 64, "p" * 100, "a.b\n", "\u0661",
                                            "\uff41", "a\tb", "A", "-a", "a-", "a_b", "a.b", "a..b", "\x00"]))
_valid = {
    "slug": st.from_regex(rules.SLUG, fullmatch=True),
    "name": st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
                    max_size=40).filter(str.strip),
    "domain": st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,3}", fullmatch=True),
    "compose_project": st.from_regex(rules.PROJECT, fullmatch=True),
    "image_tag": st.from_regex(rules.TAG, fullmatch=True),
    "vars": st.dictionaries(st.from_regex(rules.VAR_NAME, fullmatch=True), st.text(max_size=20).filter(
        lambda v: not rules.CONTROL_CHARS.search(v)), max_size=3),
}


@st.composite
def _instances(draw):
    data = {field: draw(strategy) for field, strategy in _valid.items()}
    swapped = draw(st.sampled_from([None, *_valid]))
    if swapped == "vars":
        data["vars"] = {draw(_edges): draw(_edges)}
    elif swapped is not None:
        data[swapped] = draw(_edges)
    return data


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=_instances())
def test_what_saves_renders(app, db, data):
    from ccp.models import Instance
    from ccp.services.instances import InstanceError, create_instance

    data = {**data, "driver": "local", "install_dir": "/srv/x"}
    try:
        inst = create_instance(data, actor="test")
    except InstanceError:
        db.session.rollback()
        event("refused")
        assert db.session.query(Instance).count() == 0
        return
    event("saved")
    try:
        build_context(inst, template_set=load_template_set("default"))  # must not raise: it saved
    finally:
        db.session.delete(inst)
        db.session.commit()
