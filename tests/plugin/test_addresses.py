"""How the chain reads an address from a header or a peer: one canonical text per address."""

import ipaddress

import pytest

from tornado_callback.plugin import normalise_address, parse_address


@pytest.mark.parametrize(("text", "canonical"), [
    ("10.0.0.5", "10.0.0.5"),
    (" 10.0.0.5 ", "10.0.0.5"),
    ("[10.0.0.5]", "10.0.0.5"),
    ("10.0.0.5%eth0", "10.0.0.5"),
    ("::ffff:10.0.0.5", "10.0.0.5"),
    ("[::FFFF:10.0.0.5]", "10.0.0.5"),
    ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
    ("[fe80::1%eth0]", "fe80::1"),
    ("255.255.255.255", "255.255.255.255"),
])
def test_every_spelling_of_an_address_gives_one_text(text, canonical):
    assert normalise_address(text) == canonical
    assert parse_address(text) == ipaddress.ip_address(canonical)


@pytest.mark.parametrize("text", [
    "010.0.0.5",  # octal to some parsers: it must not quietly become 10.0.0.5 or 8.0.0.5
    "10.0.0.05",
    "10.0.5",
    "10.0.0.256",
    "10.0.0.5.6",
    "+10.0.0.5",
    "10.0.0.5\x00",
    "١٠.0.0.5",  # Arabic-Indic digits
    "unknown",
    "",
    "1" * 100,
])
def test_what_is_not_an_address_is_refused(text):
    assert normalise_address(text) is None
    assert parse_address(text) is None
