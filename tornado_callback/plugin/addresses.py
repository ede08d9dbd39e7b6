"""Addresses and names as resolvers compare them: normalised text, parsed addresses, the effective host."""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Mapping
from typing import Any


def normalise_address(value: str) -> str | None:
    """The canonical text of an IP address, or None if ``value`` is not one.

    Brackets and IPv6 zone ids are dropped, IPv4-mapped IPv6 becomes IPv4, so
    that ``::ffff:10.0.0.5``, ``[::FFFF:10.0.0.5]`` and ``10.0.0.5`` agree.
    """
    # Cached like parse_address: each resolver that looks at the client
    # normalises its address again, and the text costs as much as a parse.
    return _normalise_address(value) if len(value) <= MAX_ADDRESS_TEXT else None


def parse_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``value`` names, normalised as by ``normalise_address``; None if it names none."""
    # One request asks about the same few strings several times (the proxy's
    # address, the client's), and parsing them was half of the chain's cost.
    # Cached, but only strings short enough to be an address: a client cannot
    # fill the cache with large ones.
    return _parse_address(value) if len(value) <= MAX_ADDRESS_TEXT else None


MAX_ADDRESS_TEXT = 80  # "[" + 45 characters of IPv6 + "%" + a zone id + "]", and spaces around


@functools.lru_cache(maxsize=8192)
def _normalise_address(value: str) -> str | None:
    text = _bare_address(value)
    if _dotted_quad(text) is not None:
        # inet_pton takes only the canonical dotted quad (no leading zeros,
        # four parts, nothing around): the text is its own normal form, and
        # a boot storm brings a new address with every request.
        return text
    address = _parse_bare(text)
    return None if address is None else str(address)


@functools.lru_cache(maxsize=8192)
def _parse_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = _bare_address(value)
    packed = _dotted_quad(text)
    return ipaddress.IPv4Address(packed) if packed is not None else _parse_bare(text)


def _bare_address(value: str) -> str:
    """``value`` without spaces, brackets and IPv6 zone id."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text.split("%", 1)[0]


def _dotted_quad(text: str) -> bytes | None:
    """The four bytes of an IPv4 address in canonical dotted-quad text, else None.

    The C parser, a tenth of ipaddress's cost; anything else (IPv6, or text
    ipaddress would refuse too) goes to ipaddress.
    """
    try:
        return socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None


def _parse_bare(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normalise_name(value: str) -> str:
    """Host names compare case-insensitively and without the root's trailing dot."""
    return value.strip().rstrip(".").lower()


# In the order AWX asks for them: the first one a host has decides.
EFFECTIVE_HOST_VARIABLES = ("ansible_host", "ansible_ssh_host")


def effective_host(host_name: str, variables: Mapping[str, Any]) -> str | None:
    """The one name or address AWX compares a caller with: ``ansible_host``, else
    ``ansible_ssh_host``, else the inventory name (``Host.get_effective_host_name``).

    The variable decides by being there, whatever it holds, so a host whose
    ``ansible_host`` is not text (or blank) has none: None, and nothing matches it.
    """
    for variable in EFFECTIVE_HOST_VARIABLES:
        if variable in variables:
            value = variables[variable]
            return value if isinstance(value, str) and value.strip() else None
    return host_name


def effective_host_name(host_name: str, variables: Mapping[str, Any]) -> str | None:
    """The effective host normalised as a DNS name; None when it is an address or there is none."""
    effective = effective_host(host_name, variables)
    if effective is None or normalise_address(effective) is not None:
        return None
    return normalise_name(effective)
