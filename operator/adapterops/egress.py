"""Where the operator may send a request a tenant named: URL prefixes the cluster admin allowed.

The operator calls some URLs from a spec with its own network position (a Prometheus override, the
canary's judge, an S3 endpoint from the object's Secret); on a shared cluster that would let a tenant
reach whatever the operator can (a cloud metadata endpoint, an internal admin API). So such a URL is
used only when it falls under a prefix the admin allowed.

URLs are compared parsed, never as strings: scheme, host and effective port must be equal, and the
path must be the prefix's path or below it (segment by segment). Anything a parser could read two
ways is refused rather than normalised: userinfo (`http://allowed@evil`), non-ASCII hosts (use the
`xn--` form), percent-encoding, backslashes, whitespace and control characters, `.`/`..` or empty path
segments, queries and fragments. The URL is also parsed by httpx (the client that sends the request)
and must read the same there. Normalising only ever maps a URL to the same server (ASCII case of
scheme and host, the default port, the compressed form of an IPv6 address), so a refusal is the only
way a disagreement can go.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

ANY = "*"
"""An allowlist entry that allows every http(s) URL (single-tenant clusters only)."""

DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*\.?$")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\%?#]")


class UrlError(ValueError):
    """A URL that is not an http(s) URL this module can read unambiguously; the message says why."""


@dataclass(frozen=True)
class Url:
    """An http(s) URL reduced to what decides where a request goes: scheme, host, port, path."""

    scheme: str
    host: str  # lower-case ASCII; an IPv6 address compressed, without brackets
    port: int  # explicit, or the scheme's default
    path: str  # "" or "/a/b", never a trailing slash

    def under(self, prefix: Url) -> bool:
        """Whether this URL is `prefix` or below it (whole path segments: /v1 covers /v1/x, not /v1x)."""
        same_origin = (self.scheme, self.host, self.port) == (prefix.scheme, prefix.host, prefix.port)
        return same_origin and (self.path == prefix.path or self.path.startswith(prefix.path + "/"))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.path}"


def parse_url(text: str) -> Url:
    """`text` as a Url; UrlError says what makes it ambiguous or not an http(s) URL."""
    if not text.isascii():
        raise UrlError("has non-ASCII characters (write an international host name in its xn-- form)")
    bad = _FORBIDDEN_CHARS.search(text)
    if bad:
        what = {"%": "percent-encoding", "?": "a query", "#": "a fragment", "\\": "a backslash"}
        raise UrlError(f"has {what.get(bad.group(), 'whitespace or control characters')}, which is not accepted")
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # e.g. brackets around something that is not an IPv6 address
        raise UrlError(f"is not a URL ({exc})") from exc
    if parts.scheme not in DEFAULT_PORTS:
        raise UrlError("is not an http:// or https:// URL")
    if "@" in parts.netloc:
        raise UrlError("has userinfo (user@host), which is not accepted")
    try:
        port = parts.port
    except ValueError as exc:
        raise UrlError("has a port that is not a number from 0 to 65535") from exc
    host = _host(parts.hostname or "", bracketed=parts.netloc.startswith("["))
    segments = parts.path.split("/")[1:]
    if parts.path and not parts.path.startswith("/"):
        raise UrlError("has a path that does not start with /")
    if segments and segments[-1] == "":
        segments.pop()  # one trailing slash: the same prefix
    if any(s in ("", ".", "..") for s in segments):
        raise UrlError("has an empty, '.' or '..' path segment, which is not accepted")
    path = "".join("/" + s for s in segments)
    url = Url(parts.scheme, host, DEFAULT_PORTS[parts.scheme] if port is None else port, path)
    _same_for_httpx(text, url)
    return url


def _host(host: str, bracketed: bool) -> str:
    if not host:
        raise UrlError("has no host")
    if bracketed:
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError as exc:
            raise UrlError("has brackets around a host that is not an IPv6 address") from exc
    if not _HOSTNAME.match(host):
        raise UrlError(f"has a host ({host}) that is not a DNS name or IPv4 address")
    return host


def _same_for_httpx(text: str, url: Url) -> None:
    """The client that sends the request must read the same scheme, host and port."""
    try:
        theirs = httpx.URL(text)
    except (httpx.InvalidURL, ValueError) as exc:
        raise UrlError("is not a URL the HTTP client accepts") from exc
    host = theirs.raw_host.decode("ascii", "replace").lower()  # .host would decode xn-- labels
    if ":" in host:
        host = ipaddress.IPv6Address(host).compressed
    port = theirs.port if theirs.port is not None else DEFAULT_PORTS.get(theirs.scheme)
    if (theirs.scheme, host, port) != (url.scheme, url.host, url.port):
        raise UrlError("is read differently by the HTTP client")


@dataclass(frozen=True)
class Allowlist:
    """URL prefixes an admin allowed (or ANY). Built from validated entries: see `parse_allowlist`."""

    entries: tuple[str, ...]

    @property
    def allows_any(self) -> bool:
        return ANY in self.entries

    def allows(self, url: Url) -> bool:
        return self.allows_any or any(url.under(parse_url(entry)) for entry in self.entries)

    def describe(self) -> str:
        if self.allows_any:
            return "any http(s) URL"
        return ", ".join(self.entries) if self.entries else "none"


def parse_allowlist(entries: tuple[str, ...]) -> tuple[str, ...]:
    """Entries in canonical form; ValueError names the first one that is not an unambiguous URL prefix."""
    out: list[str] = []
    for entry in entries:
        if entry == ANY:
            out.append(ANY)
            continue
        try:
            out.append(str(parse_url(entry)))
        except UrlError as exc:
            raise ValueError(f"entry {entry!r} {exc}") from exc
    return tuple(dict.fromkeys(out))


def check(url: str, allowed: Allowlist) -> str | None:
    """None when `url` may be called; otherwise why not (without the allowed list: the caller names it)."""
    try:
        parsed = parse_url(url)
    except UrlError as exc:
        return str(exc)
    if not allowed.allows(parsed):
        return "is not under an allowed prefix"
    return None
