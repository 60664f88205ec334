from __future__ import annotations

import pytest

from plugin_streams.origin.subscriptions.urls import webhook_url_problem


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/webhook",
        "http://127.9.9.9/hook",
        "http://localhost:3000/hook",
        "https://hooks.example.com/ds",
        "https://93.184.216.34/hook",
    ],
)
def test_accepted(url: str) -> None:
    assert webhook_url_problem(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",  # private, and plain http
        "https://10.0.0.1/hook",
        "https://172.16.5.4/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata: link-local
        "https://0.0.0.0/hook",
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",  # a private IPv4 in IPv6 clothing
        "https://224.0.0.1/hook",
        "http://hooks.example.com/ds",  # plain http off this machine
        "ftp://127.0.0.1/x",
        "not a url",
        "https://user:pw@hooks.example.com/",
        "https://host:99999/",
    ],
)
def test_rejected(url: str) -> None:
    assert webhook_url_problem(url) is not None
