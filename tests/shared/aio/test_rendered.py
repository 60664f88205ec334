"""Rendered heads (shared.aio.rendered): a Template filled in is the head Rendered gives."""

from __future__ import annotations

import pytest

from plugin_streams.shared.aio.rendered import HOLES, Rendered, Template


def test_a_filled_template_is_the_rendered_head_with_those_values() -> None:
    template = Template(200, {"Stream-Next-Offset": HOLES[0], "Producer-Epoch": HOLES[1], "Producer-Seq": HOLES[2]})
    for offset, epoch, seq in (("0000000000000001_0000000000000100", "0", "0"), ("x_y", "7", "123456")):
        headers = {"Stream-Next-Offset": offset, "Producer-Epoch": epoch, "Producer-Seq": seq}
        assert template.head(offset, epoch, seq) == Rendered(200, headers).head()


def test_holes_may_come_in_any_order_and_a_204_has_no_length() -> None:
    template = Template(204, {"B": HOLES[1], "A": HOLES[0]})
    head = template.head("first", "second")
    assert head == Rendered(204, {"B": "second", "A": "first"}).head()
    assert head.startswith(b"HTTP/1.1 204 No Content\r\nB: second\r\nA: first\r\n") and b"Content-Length" not in head


def test_error_statuses_render_with_their_body_length() -> None:
    head = Rendered(503, {"Content-Type": "text/plain", "Retry-After": "1"}, 12).head()
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\n")
    assert b"\r\nContent-Length: 12\r\n" in head and head.endswith(b"\r\n\r\n")


@pytest.mark.parametrize(
    "headers", [{"A": HOLES[1]}, {"A": HOLES[0], "B": HOLES[0]}, {"Date": "now"}, {"A": "x\r\nInjected: 1"}]
)
def test_bad_templates_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        Template(200, headers)


@pytest.mark.parametrize("status", [100, 304])
def test_statuses_without_a_final_body_rule_are_refused(status: int) -> None:
    with pytest.raises(ValueError):
        Rendered(status, {})
