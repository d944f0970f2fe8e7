"""Where webhooks may go: URL rules, the private-address policy and the host allow-list,
as functions and as ``POST /webhooks`` answers (422 naming the field, the value and the rule).

DNS is real here: ``localhost`` resolves through the system resolver, and names
under ``.invalid`` never resolve (RFC 6761).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.api.app import create_app
from service.db.keys import create_key
from service.lifecycle.destinations import (
    DestinationError,
    DestinationPolicy,
    UnresolvedHostError,
    address_kind,
    host_allowed,
    normalize_pattern,
    redact,
    url_problems,
)
from service.settings import Settings

EVENTS = ["offer_made", "lead_won"]
PRIVATE = [  # url, the address named in the refusal, its kind
    ("http://127.0.0.1:5432/", "127.0.0.1 is a loopback", "loopback"),
    ("http://10.20.30.40/hooks", "10.20.30.40 is a private", "private"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local",
     "link-local"),
    ("http://[::1]:8080/hooks", "::1 is a loopback", "loopback"),
    ("http://localhost:8080/hooks", "localhost resolves to 127.0.0.1, which is a loopback",
     "loopback"),
]


@pytest.mark.parametrize(("url", "rule"), [
    ("ftp://hooks.example.com/x", "the url's scheme must be http or https (got 'ftp')"),
    ("file:///etc/passwd", "the url's scheme must be http or https (got 'file')"),
    ("hooks.example.com/x", "the url's scheme must be http or https (got none)"),
    ("http://user:pw@hooks.example.com/", "must not carry credentials (user:pass@)"),
    ("http://hooks.example.com:0/", "port must be between 1 and 65535 (got 0)"),
    ("http://hooks.example.com:65536/", "port must be between 1 and 65535 (got 65536)"),
    ("http:///x", "the url must name a host"),
    ("http://exa mple.com/", "is not a DNS name or an IP address"),
    ("http://[::1/", "the url is not a valid URL"),
])
def test_url_rules(url: str, rule: str) -> None:
    problems = url_problems(url)
    assert len(problems) == 1 and rule in problems[0], problems
    with pytest.raises(DestinationError, match=re.escape(problems[0])) as info:
        DestinationPolicy(allow_private=True).check(url)  # delivery refuses it the same way
    assert not isinstance(info.value, UnresolvedHostError)


def test_good_urls_break_no_rule() -> None:
    for url in ("https://hooks.example.com/fairlead?x=1", "http://h.example:8080",
                "https://[2606:4700::1]:8443/", "https://bücher.example/", "http://a_b.example/"):
        assert url_problems(url) == [], url


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"), ("127.9.9.9", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("10.0.0.1", "private"), ("172.16.5.4", "private"),
    ("192.168.1.1", "private"), ("fd00::1", "private"), ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"), ("224.0.0.251", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("240.0.0.1", "private"),
    ("100.100.100.200", "shared (carrier-grade NAT)"),
    ("93.184.215.14", None), ("2606:4700::1", None), ("8.8.8.8", None),
])
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_allowed_host_patterns() -> None:
    patterns = [normalize_pattern(p) for p in
                ("Hooks.Example.com.", "*.partner.io", "[::1]", "10.0.0.5", "*.bücher.example")]
    assert patterns == ["hooks.example.com", "*.partner.io", "::1", "10.0.0.5",
                        "*.xn--bcher-kva.example"]
    for host, ok in [("hooks.example.com", True), ("x.hooks.example.com", False),
                     ("a.partner.io", True), ("a.b.partner.io", True), ("partner.io", False),
                     ("evilpartner.io", False), ("partner.io.evil.com", False), ("::1", True),
                     ("10.0.0.5", True), ("10.0.0.6", False), ("shop.xn--bcher-kva.example", True)]:
        assert host_allowed(host, patterns) is ok, host
    for bad in ("", "*.", "*", "a..b", "http://x.com", "*.-x.com", "a b"):
        with pytest.raises(ValueError, match="is not a host name, an IP address or a"):
            normalize_pattern(bad)


def test_settings_read_the_policy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().webhook_destinations() == DestinationPolicy()  # off by default
    monkeypatch.setenv("FAIRLEAD_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("FAIRLEAD_WEBHOOK_ALLOWED_HOSTS", " Hooks.example.com, *.partner.io ")
    assert Settings().webhook_destinations() == DestinationPolicy(
        allow_private=True, allowed_hosts=("hooks.example.com", "*.partner.io"))
    monkeypatch.setenv("FAIRLEAD_WEBHOOK_ALLOWED_HOSTS", '["a.example", "*.b.example"]')
    assert Settings().webhook_allowed_hosts == ["a.example", "*.b.example"]
    for bad, says in (("a.example,*.", "'*.' is not a host name"),
                      ("[oops", "comma-separated or a JSON list")):
        monkeypatch.setenv("FAIRLEAD_WEBHOOK_ALLOWED_HOSTS", bad)
        with pytest.raises(ValidationError, match=says):
            Settings()


def test_resolution_and_redaction() -> None:
    target = DestinationPolicy(allow_private=True).check("http://LOCALHOST.:8080/x")
    assert target.host == "localhost" and target.host_header == "localhost:8080"
    assert ipaddress.ip_address("127.0.0.1") in target.addresses
    assert str(target.pinned(target.addresses[0])) == f"http://{target.addresses[0]}:8080/x"
    v6 = DestinationPolicy(allow_private=True).check("https://[::1]/")
    assert v6.host_header == "[::1]" and str(v6.pinned(v6.addresses[0])) == "https://[::1]/"
    with pytest.raises(UnresolvedHostError,
                       match=re.escape("hooks.fairlead-test.invalid does not resolve")):
        DestinationPolicy().check("https://hooks.fairlead-test.invalid/")
    assert redact("https://user:s3cret@h.example/x") == "https://user:***@h.example/x"
    assert redact("https://h.example/a:b@c") == "https://h.example/a:b@c"


# -- POST /webhooks -----------------------------------------------------------------------


@contextmanager
def _api(db_url: str, folder: Path, **settings: Any) -> Iterator[tuple[TestClient,
                                                                        dict[str, str]]]:
    app = create_app(Settings(database_url=db_url, model_dir=folder / "models",
                              lifecycle_interval_s=None, **settings))
    with TestClient(app) as client:
        with app.state.sessionmaker() as session:
            token = create_key(session, "admin").token
            session.commit()
        yield client, {"X-API-Key": token}


def _refusal(client: TestClient, admin: dict[str, str], url: str) -> dict[str, Any]:
    r = client.post("/webhooks", headers=admin, json={"url": url, "events": EVENTS})
    assert r.status_code == 422, (url, r.json())
    problems = r.json()["problems"]
    assert len(problems) == 1, problems
    problem: dict[str, Any] = problems[0]
    assert problem["file"] == "webhook" and problem["column"] == "url"
    assert problem["rule"] in r.json()["detail"]
    return problem


def _accepted(client: TestClient, admin: dict[str, str], url: str) -> None:
    r = client.post("/webhooks", headers=admin, json={"url": url, "events": EVENTS})
    assert r.status_code == 201, (url, r.json())
    assert r.json()["url"] == url


def test_urls_that_break_the_rules_are_422_naming_field_value_and_rule(
        db_url: str, tmp_path: Path) -> None:
    with _api(db_url, tmp_path, webhook_allow_private=True) as (client, admin):
        for url, rule in [
            ("ftp://hooks.example.com/x", "the url's scheme must be http or https (got 'ftp')"),
            ("file:///etc/passwd", "the url's scheme must be http or https (got 'file')"),
            ("http://127.0.0.1:0/", "the url's port must be between 1 and 65535 (got 0)"),
            ("http://127.0.0.1:99999/", "between 1 and 65535 (got 99999)"),
        ]:
            problem = _refusal(client, admin, url)
            assert problem["value"] == url and rule in problem["rule"]
        problem = _refusal(client, admin, "http://ops:hunter2@127.0.0.1:8080/")
        assert "must not carry credentials (user:pass@)" in problem["rule"]
        assert problem["value"] == "http://ops:***@127.0.0.1:8080/"  # the password not echoed
        both = client.post("/webhooks", headers=admin,
                           json={"url": "gopher://x", "events": ["lead_lost"]}).json()
        assert [p["column"] for p in both["problems"]] == ["url", "events"]
        assert client.get("/webhooks", headers=admin).json()["total"] == 0


def test_private_destinations_are_refused_by_default_and_say_how_to_allow_them(
        db_url: str, tmp_path: Path) -> None:
    with _api(db_url, tmp_path) as (client, admin):
        for url, says, kind in PRIVATE:
            problem = _refusal(client, admin, url)
            assert problem["value"] == url
            assert f"the url's host {says} address" in problem["rule"]
            assert kind in problem["rule"] and "server-side request forgery" in problem["rule"]
            assert "FAIRLEAD_WEBHOOK_ALLOW_PRIVATE=1" in problem["rule"]
        gone = _refusal(client, admin, "https://hooks.fairlead-test.invalid/x")
        assert "host hooks.fairlead-test.invalid does not resolve (DNS: " in gone["rule"]
        assert gone["rule"].endswith("; subscribe a host that resolves")
        assert client.get("/webhooks", headers=admin).json()["total"] == 0
        _accepted(client, admin, "https://93.184.215.14/hooks")  # public: nothing is sent now


def test_allow_private_accepts_private_destinations(db_url: str, tmp_path: Path) -> None:
    with _api(db_url, tmp_path, webhook_allow_private=True) as (client, admin):
        for url, _, _ in PRIVATE:
            _accepted(client, admin, url)
        assert client.get("/webhooks", headers=admin).json()["total"] == len(PRIVATE)


def test_allowed_hosts_accept_only_their_hosts_in_addition_to_the_address_rule(
        db_url: str, tmp_path: Path) -> None:
    hosts = ["localhost", "*.hooks.invalid"]
    with _api(db_url, tmp_path, webhook_allow_private=True,
              webhook_allowed_hosts=hosts) as (client, admin):
        _accepted(client, admin, "http://localhost:8080/hooks")
        for url, host in [("http://127.0.0.1:8080/hooks", "127.0.0.1"),
                          ("https://hooks.example.com/", "hooks.example.com"),
                          ("https://hooks.invalid/", "hooks.invalid")]:  # the suffix itself
            rule = _refusal(client, admin, url)["rule"]
            assert rule == (f"the url's host {host} is not in the operator's allowed webhook "
                            "hosts (localhost, *.hooks.invalid; FAIRLEAD_WEBHOOK_ALLOWED_HOSTS)")
        # a name the pattern allows is then resolved (and, here, has no address)
        assert "a.hooks.invalid does not resolve" in _refusal(
            client, admin, "https://a.hooks.invalid/")["rule"]
    with _api(db_url, tmp_path, webhook_allowed_hosts=hosts) as (client, admin):
        rule = _refusal(client, admin, "http://localhost:8080/hooks")["rule"]
        assert "resolves to 127.0.0.1, which is a loopback address" in rule
