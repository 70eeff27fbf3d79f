"""IPv6 internal ranges that Python 3.11's `ipaddress` calls global are refused as webhook targets.

- `fec0::/10`, site-local (RFC 3879 deprecated them, but a network that still routes them is
  internal by definition), `5f00::/16` (segment routing, RFC 9602), `3fff::/20` (documentation);
- `64:ff9b:1::/48`, the local-use NAT64 prefix (RFC 8215): a translator there reaches an IPv4
  address embedded by one of RFC 6052's layouts; the cloud metadata address is refused in every
  layout even where private targets are allowed.
"""

from __future__ import annotations

import ipaddress

import pytest

from app.webhooks.targets import problem

TARGETS = [
    "http://[fec0::1]/hook",                    # site-local
    "http://[fec0:0:0:ffff::1]/hook",           # the old well-known site-local DNS server
    "http://[64:ff9b:1::a9fe:a9fe]/hook",       # local-use NAT64 of 169.254.169.254 (cloud metadata)
    "http://[64:ff9b:1::7f00:1]/hook",          # local-use NAT64 of 127.0.0.1
]


@pytest.mark.parametrize("url", TARGETS)
def test_internal_ipv6_targets_are_refused_when_private_addresses_are(app, tenant, monkeypatch, url):
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)
    # the well-known NAT64 prefix is refused today: the local-use one must be too
    assert tenant.api.post("/api/v1/webhooks", json={"url": "http://[64:ff9b::7f00:1]/hook",
                                                      "events": ["ticket.created"]}).status_code == 422
    response = tenant.api.post("/api/v1/webhooks", json={"url": url, "events": ["ticket.created"]})
    assert response.status_code == 422, f"{url} was accepted: {response.get_json()}"
    assert "url" in response.get_json()["errors"]


@pytest.mark.parametrize(("address", "allowed_private", "what"), [
    ("64:ff9b:1::a9fe:a9fe", True, "a cloud metadata address"),          # /96 layout
    ("64:ff9b:1:a9fe:a9:fe00::", True, "a cloud metadata address"),      # /48 layout
    ("64:ff9b:1:0:a9:fea9:fe00:0", True, "a cloud metadata address"),    # /64 layout
    ("5f00::1", False, "a private or internal address"),
    ("3fff::1", False, "a private or internal address"),
    ("2606:4700::1111", False, None),                                    # a public address stays allowed
    ("64:ff9b::808:808", False, None),                                   # well-known NAT64 of 8.8.8.8
])
def test_what_each_address_is(address, allowed_private, what):
    assert problem(ipaddress.ip_address(address), allowed_private) == what
