"""A stream's configuration as JSON fields and back (origin/storage/config_fields.py)."""

from __future__ import annotations

from plugin_streams.origin.storage.base import ForkLink, StreamConfig
from plugin_streams.origin.storage.config_fields import config_from_fields, config_to_fields
from plugin_streams.shared.parse import Expiry, Retention


def test_configuration_json_round_trips() -> None:
    config = StreamConfig(
        generation=7,
        path="a/b",
        content_type="application/json",
        ttl_seconds=None,
        expires=Expiry(1_800_000_000_000, "2027-01-15T08:00:00Z"),
        created_ms=123,
        fork=ForkLink(3, "src", 42, "0000000000000003_0000000000000042", 2),
        soft_deleted=True,
        retention=Retention(60, None),
        max_size=1000,
    )
    assert config_from_fields(config_to_fields(config)) == config
    plain = StreamConfig(1, "p", "text/plain", 30, None, 0)
    assert config_from_fields(config_to_fields(plain)) == plain
