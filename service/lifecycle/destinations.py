"""Where webhooks may be sent: URL rules and the address policy against request forgery.

A webhook URL is chosen by a partner, and the service POSTs to it from inside
the operator's network; without a policy a partner could make the service
call its database port, a cloud metadata endpoint (``169.254.169.254``) or an
admin page on ``localhost`` (server-side request forgery).  So:

* the URL must be ``http``/``https`` with a host, no ``user:pass@`` and a port
  in 1-65535 (:func:`url_problems`);
* by default the host — an IP literal, or every address it resolves to — must
  be a global unicast address: loopback, private, link-local, shared (CGNAT),
  multicast, reserved and unspecified addresses are refused unless
  ``allow_private`` (``FAIRLEAD_WEBHOOK_ALLOW_PRIVATE=1``);
* when ``allowed_hosts`` is not empty, the host must also match one of its
  entries: ``hooks.example.com`` exactly, or ``*.example.com`` for any name
  under ``example.com`` (not ``example.com`` itself).

The check runs when a URL is subscribed and again before every delivery
attempt (DNS may have changed since: rebinding); the sender then connects to
the very addresses it checked, so a second lookup cannot swap them.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_PRIVATE_ENV = "FAIRLEAD_WEBHOOK_ALLOW_PRIVATE"
ALLOWED_HOSTS_ENV = "FAIRLEAD_WEBHOOK_ALLOWED_HOSTS"
DEFAULT_PORTS = {"http": 80, "https": 443}
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; cloud-internal services
# After IDNA encoding a DNS name is ASCII labels; "_" appears in real service names.
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


class DestinationError(ValueError):
    """A webhook destination the rules or the policy refuse; ``str()`` says why."""


class UnresolvedHostError(DestinationError):
    """The host has no address right now (a DNS failure may be temporary)."""


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` resolves to, in the resolver's order, without repeats.

    Raises
    ------
    OSError
        The name does not resolve (``socket.gaierror``).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: dict[IPAddress, None] = {}
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone ("fe80::1%eth0")
        found[ipaddress.ip_address(raw)] = None
    return list(found)


def address_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public destination (``"loopback"``, ``"private"``...), or None."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return address_kind(ip.ipv4_mapped)  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "shared (carrier-grade NAT)"
    if not ip.is_global:
        return "non-global"
    return None


def _ascii_host(host: str) -> str:
    return host.strip().lower().rstrip(".").encode("idna").decode("ascii")


def normalize_pattern(pattern: str) -> str:
    """An ``allowed_hosts`` entry in the form hosts are compared in (lowercase, ASCII).

    Raises
    ------
    ValueError
        An entry that is neither a host name, an IP address nor ``*.suffix``.
    """
    text = pattern.strip().lower().rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text[2:] if text.startswith("*.") else text
    try:
        ascii_name = _ascii_host(name)
    except UnicodeError:
        ascii_name = ""
    if not ascii_name or not all(_LABEL.match(label) for label in ascii_name.split(".")):
        raise ValueError(f"The allowed webhook host {pattern!r} is not a host name, an IP "
                         "address or a '*.suffix' pattern (e.g. 'hooks.example.com', "
                         "'*.example.com').")
    return f"*.{ascii_name}" if text.startswith("*.") else ascii_name


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Whether ``host`` (normalized) matches one of ``patterns`` (normalized).

    ``*.example.com`` matches names under ``example.com`` at any depth, not
    ``example.com`` itself.
    """
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def redact(url: str) -> str:
    """``url`` with the password of a ``user:pass@`` part masked (for error messages)."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:?#]*):[^/@?#]*@", r"\1:***@", url)


@dataclass(frozen=True)
class Target:
    """A URL that passed the checks: what to connect to and what to say in ``Host``."""

    url: httpx.URL
    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def host_header(self) -> str:
        """The ``Host`` header of the original URL (port only when not the default)."""
        name = f"[{self.host}]" if ":" in self.host else self.host
        default = DEFAULT_PORTS[self.url.scheme]
        return name if self.port == default else f"{name}:{self.port}"

    def pinned(self, address: IPAddress) -> httpx.URL:
        """The URL with its host replaced by ``address``, so no second DNS lookup happens."""
        return self.url.copy_with(host=str(address))


def _parse(url: str) -> tuple[httpx.URL | None, list[str]]:
    """The parsed URL and every rule it breaks that needs no DNS."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        return None, [f"the url is not a valid URL ({exc})"]
    problems: list[str] = []
    if parsed.scheme not in DEFAULT_PORTS:
        shown = f"'{parsed.scheme}'" if parsed.scheme else "none"
        problems.append(f"the url's scheme must be http or https (got {shown})")
    if parsed.userinfo:
        problems.append("the url must not carry credentials (user:pass@): the receiver "
                        "authenticates the X-Fairlead-Signature instead")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        problems.append(f"the url's port must be between 1 and 65535 (got {parsed.port})")
    host = parsed.host
    if parsed.scheme not in DEFAULT_PORTS:
        pass  # another scheme's host rules are not ours to state
    elif not host:
        problems.append("the url must name a host (http://host/...)")
    elif ":" in host:
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            problems.append(f"the url's host {host!r} is not a valid IPv6 address")
    else:
        try:
            ascii_host = _ascii_host(host)
            ok = all(_LABEL.match(label) for label in ascii_host.split("."))
        except UnicodeError:
            ok = False
        if not ok:
            problems.append(f"the url's host {host!r} is not a DNS name or an IP address")
    return parsed, problems


def url_problems(url: str) -> list[str]:
    """Every rule ``url`` breaks as a webhook URL, before any policy or DNS lookup."""
    return _parse(url)[1]


@dataclass(frozen=True)
class DestinationPolicy:
    """Which hosts and addresses webhooks may be sent to.

    Attributes
    ----------
    allow_private : bool
        Also accept loopback, private, link-local, shared, multicast, reserved
        and unspecified addresses (a receiver inside the operator's network, tests).
    allowed_hosts : tuple of str
        When not empty, only hosts matching one of these (exact names or IP
        addresses, ``*.suffix`` patterns) are accepted, whatever they resolve to.
    """

    allow_private: bool = False
    allowed_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_hosts",
                           tuple(normalize_pattern(p) for p in self.allowed_hosts))

    def _address_problem(self, host: str, ip: IPAddress) -> str | None:
        if self.allow_private:
            return None
        kind = address_kind(ip)
        if kind is None:
            return None
        via = "is" if host == str(ip) else f"resolves to {ip}, which is"
        article = "an" if kind[0] in "aeiou" else "a"
        return (f"the url's host {host} {via} {article} {kind} address; webhooks to "
                "loopback, private, link-local, shared, multicast, reserved or unspecified "
                "addresses are refused (server-side request forgery); the operator allows "
                f"them with {ALLOW_PRIVATE_ENV}=1")

    def check(self, url: str) -> Target:
        """Check ``url`` now, DNS included; the addresses it may be sent to.

        Raises
        ------
        UnresolvedHostError
            The host does not resolve.
        DestinationError
            Every other refusal: URL rules, ``allowed_hosts``, a forbidden address
            (the message names the address and how to allow it).
        """
        parsed, problems = _parse(url)
        if parsed is None or problems:
            raise DestinationError("; ".join(problems))
        raw = parsed.host
        try:
            literal: IPAddress | None = ipaddress.ip_address(raw.split("%", 1)[0])
        except ValueError:
            literal = None
        host = str(literal) if literal is not None else _ascii_host(raw)
        if self.allowed_hosts and not host_allowed(host, self.allowed_hosts):
            raise DestinationError(
                f"the url's host {host} is not in the operator's allowed webhook hosts "
                f"({', '.join(self.allowed_hosts)}; {ALLOWED_HOSTS_ENV})")
        port = parsed.port or DEFAULT_PORTS[parsed.scheme]
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = resolve_host(host, port)
            except (OSError, UnicodeError, ValueError) as exc:
                raise UnresolvedHostError(f"the url's host {host} does not resolve "
                                     f"(DNS: {exc})") from None
            if not addresses:
                raise UnresolvedHostError(f"the url's host {host} does not resolve "
                                     "(DNS: no addresses)")
        refused = [p for ip in addresses if (p := self._address_problem(host, ip))]
        if refused:
            raise DestinationError(refused[0])
        return Target(parsed, host, port, tuple(addresses))
