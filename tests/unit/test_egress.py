"""URL allowlists (adapterops.egress): a URL is allowed only when it parses unambiguously and lies under
an allowed prefix by scheme, host, port and whole path segments; every trick that reads as an allowed
host to one parser and another host to the next is refused."""

from __future__ import annotations

import pytest

from adapterops.egress import ANY, Allowlist, UrlError, check, parse_allowlist, parse_url

ALLOWED = Allowlist(
    parse_allowlist(
        (
            "http://prometheus.monitoring:9090",
            "https://judge.internal/v1",
            "http://127.0.0.1:8080",
            "http://[::1]:9000",
        )
    )
)


@pytest.mark.parametrize(
    "url",
    [
        "http://prometheus.monitoring:9090",
        "http://prometheus.monitoring:9090/",
        "http://prometheus.monitoring:9090/prometheus/api",
        "HTTP://Prometheus.MONITORING:9090",  # scheme and host are case-insensitive
        "https://judge.internal/v1",
        "https://judge.internal/v1/",
        "https://judge.internal:443/v1/chat",  # the default port, written out
        "http://127.0.0.1:8080/x",
        "http://[0:0:0:0:0:0:0:1]:9000",  # the same IPv6 address, written long
    ],
)
def test_urls_under_an_allowed_prefix_are_allowed(url: str) -> None:
    assert check(url, ALLOWED) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        # userinfo: `allowed@` is a user name, the host is what follows
        ("http://prometheus.monitoring:9090@169.254.169.254/", "userinfo"),
        ("http://prometheus.monitoring@169.254.169.254:9090/", "userinfo"),
        ("http://user:pw@prometheus.monitoring:9090/", "userinfo"),
        # a fragment or query that a lenient parser would read as the authority
        ("http://169.254.169.254#@prometheus.monitoring:9090", "fragment"),
        ("http://169.254.169.254?@prometheus.monitoring:9090", "query"),
        ("https://judge.internal/v1?next=http://evil", "query"),
        # backslash: browsers (and some clients) read it as '/', ending the authority early
        ("http://169.254.169.254\\@prometheus.monitoring:9090", "backslash"),
        # IDN and look-alikes: fullwidth letters NFKC-normalise to ASCII in some IDNA codecs
        ("http://\uff50rometheus.monitoring:9090", "non-ASCII"),  # fullwidth p
        ("http://prometheus.monitoring\u3002:9090", "non-ASCII"),  # ideographic full stop
        ("http://judge.\u0456nternal/v1", "non-ASCII"),  # Cyrillic i
        # whitespace and control characters, which urllib silently drops
        ("http://prometheus.monit\toring:9090", "whitespace"),
        ("http://prometheus.monitoring:9090\n@evil", "whitespace"),
        # percent-encoding and dot segments that could climb out of an allowed path
        ("https://judge.internal/v1/%2e%2e/admin", "percent"),
        ("https://judge.internal/v1/../admin", "'..'"),
        ("https://judge.internal/v1/./x", "'.'"),
        ("https://judge.internal//v1", "empty"),
        # ports
        ("http://prometheus.monitoring:9090x", "port"),
        ("http://prometheus.monitoring:99999", "port"),
        ("http://prometheus.monitoring:+9090", "port"),
        # not http(s), no host
        ("file:///etc/passwd", "http"),
        ("gopher://prometheus.monitoring:9090", "http"),
        ("http:prometheus.monitoring:9090", "no host"),
        ("http://", "no host"),
        ("http://[127.0.0.1]:8080", "brackets"),
        ("http://[v1.x]:8080", "brackets"),
        ("http://prom_etheus.monitoring:9090", "not a DNS name"),
    ],
)
def test_ambiguous_urls_are_refused_and_say_why(url: str, why: str) -> None:
    problem = check(url, ALLOWED)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    "url",
    [
        "http://prometheus.monitoring:9091",  # another port
        "http://prometheus.monitoring",  # the default port is another port
        "https://prometheus.monitoring:9090",  # another scheme
        "http://prometheus.monitoring.:9090",  # absolute name: may resolve elsewhere than the search path
        "http://prometheus.monitoring.evil.com:9090",
        "http://evil-prometheus.monitoring:9090",
        "https://judge.internal/v1beta",  # a path prefix is whole segments
        "https://judge.internal/",
        "https://judge.internal",
        "http://judge.internal/v1",
        "http://2130706433:8080",  # 127.0.0.1 as a number: not the allowed host's spelling
        "http://127.1:8080",
        "http://0x7f.0.0.1:8080",
        "http://localhost:8080",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::2]:9000",
    ],
)
def test_urls_outside_every_prefix_are_refused(url: str) -> None:
    assert check(url, ALLOWED) == "is not under an allowed prefix"


def test_an_empty_allowlist_allows_nothing_and_any_allows_every_unambiguous_url() -> None:
    assert check("https://judge.internal/v1", Allowlist(())) == "is not under an allowed prefix"
    anything = Allowlist((ANY,))
    assert check("http://169.254.169.254/latest", anything) is None
    assert check("http://a@169.254.169.254/latest", anything) is not None  # still unambiguous only
    assert anything.describe() == "any http(s) URL" and Allowlist(()).describe() == "none"


def test_allowlist_entries_are_canonical_and_deduplicated() -> None:
    entries = parse_allowlist(("HTTPS://Judge.Internal:443/v1/", "https://judge.internal/v1", "http://[0::1]:80/", "*"))
    assert entries == ("https://judge.internal/v1", "http://[::1]", "*")


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("judge.internal", "http"),
        ("https://user@judge.internal", "userinfo"),
        ("https://judge.internal/v1?x=1", "query"),
        ("https://\uff4audge.internal", "non-ASCII"),  # fullwidth j
    ],
)
def test_a_bad_allowlist_entry_is_refused_naming_it(entry: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        parse_allowlist((entry,))
    assert repr(entry) in str(caught.value)


def test_parsed_urls_print_canonically() -> None:
    assert str(parse_url("HTTP://Example.COM:80/a/b/")) == "http://example.com/a/b"
    assert str(parse_url("https://[0:0::1]:8443")) == "https://[::1]:8443"
    with pytest.raises(UrlError):
        parse_url("http://exa mple.com")
