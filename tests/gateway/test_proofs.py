"""Proof images: where a courier's proof links may point, and what counts as an image (pure
parts of ``gateway.proofs``; the fetching itself is tested against the simulators in
``tests/gateway/couriers/lalamove/test_lalamove_proof.py``)."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.proofs import fetch_policy, image_type, refusal
from gateway.urlguard import UnsafeURL, check_address


def test_a_live_entry_fetches_only_from_its_proof_hosts_over_https_and_never_loopback():
    allowed, policy, cap = fetch_policy({"sandbox": False, "base_url": "https://rest.lalamove.com",
                                         "proof_hosts": ["https://pod.cdn.example"]})
    assert refusal("https://pod.cdn.example/a/b.jpg?sig=x", allowed) is None
    for url in ("http://pod.cdn.example/b.jpg", "https://pod.cdn.example:8443/b.jpg",
                "https://pod.cdn.example.evil.example/b.jpg",
                "https://pod.cdn.example@evil.example/b.jpg",
                "https://rest.lalamove.com/b.jpg",  # its API host is not a proof host
                "http://127.0.0.1:8184/_proof/1/pod.jpg", "file:///etc/passwd"):
        assert refusal(url, allowed) == "refused", url
    assert policy.require_https and policy.allowed_networks == () and cap == 5_000_000
    for address in ("127.0.0.1", "10.0.0.5", "169.254.169.254", "::1"):
        with pytest.raises(UnsafeURL):
            check_address(ipaddress.ip_address(address), policy)


def test_a_sandbox_entry_may_fetch_from_its_own_simulator_only():
    allowed, policy, _cap = fetch_policy({"sandbox": True, "base_url": "http://127.0.0.1:8184",
                                          "proof_max_bytes": 2048})
    assert refusal("http://127.0.0.1:8184/_proof/1/pod.jpg?expires=1", allowed) is None
    for url in ("http://127.0.0.1:8185/_proof/1/pod.jpg", "http://localhost:8184/x.jpg",
                "https://127.0.0.1:8184/x.jpg"):
        assert refusal(url, allowed) == "refused", url
    check_address(ipaddress.ip_address("127.0.0.1"), policy)  # loopback, for the simulator
    with pytest.raises(UnsafeURL):
        check_address(ipaddress.ip_address("169.254.169.254"), policy)


def test_an_image_is_known_by_its_first_bytes():
    assert image_type(b"\xff\xd8\xff\xe0\x00\x10JFIF") == "image/jpeg"
    assert image_type(b"\x89PNG\r\n\x1a\n\x00\x00") == "image/png"
    assert image_type(b"RIFF\x10\x00\x00\x00WEBPVP8 ") == "image/webp"
    for body in (b"<html>", b"GIF89a", b"%PDF-1.7", b"RIFF\x10\x00\x00\x00WAVE", b""):
        assert image_type(body) is None
