from __future__ import annotations

import pytest

from plugin_streams.origin.subscriptions.errors import SubscriptionError
from plugin_streams.origin.subscriptions.fencing import CallbackTokens, apply_acks, offset_after
from plugin_streams.origin.subscriptions.model import BEFORE_FIRST, Subscription, parse_config
from plugin_streams.origin.subscriptions.signing import SigningKey


def off(position: int) -> str:
    return f"{1:016d}_{position:016d}"


def subscription() -> Subscription:
    config = parse_config({"type": "pull-wake", "streams": ["a", "b"], "wake_stream": "w"})
    sub = Subscription("s", config, "http://127.0.0.1", "2026-01-01T00:00:00.000Z", generation=3, wake_id="w_1")
    sub.link("a", "explicit", BEFORE_FIRST)
    sub.link("b", "explicit", off(5))
    return sub


def test_tokens_tell_forged_from_stale() -> None:
    key = SigningKey.generate()
    tokens = CallbackTokens(key)
    sub = subscription()
    token = tokens.issue(sub)
    live = {"wake_id": "w_1", "generation": 3}
    tokens.check(sub, token, live)
    assert CallbackTokens(SigningKey.from_seed(key.seed)).issue(sub) == token  # same key after a restart
    for bad in (token + "x", "3.", "x.y", CallbackTokens(SigningKey.generate()).issue(sub)):
        with pytest.raises(SubscriptionError) as forged:
            tokens.check(sub, bad, live)
        assert forged.value.code == "TOKEN_INVALID"
    sub.generation = 4  # a newer wake began
    for body in (live, {"wake_id": "w_1", "generation": 4}):
        with pytest.raises(SubscriptionError) as stale:
            tokens.check(sub, token, body)
        assert stale.value.code == "FENCED"
    sub.generation, sub.wake_id = 3, None  # the wake ended (done)
    with pytest.raises(SubscriptionError) as ended:
        tokens.check(sub, token, live)
    assert ended.value.code == "FENCED"


def test_acks_are_all_or_nothing() -> None:
    sub = subscription()
    tails = {"a": off(9), "b": off(9)}
    apply_acks(sub, [{"stream": "a", "offset": off(4)}, {"stream": "b", "offset": off(9)}], tails.__getitem__)
    assert (sub.links["a"].acked_offset, sub.links["b"].acked_offset) == (off(4), off(9))
    bad_batches = [
        [{"stream": "a", "offset": off(6)}, {"stream": "b", "offset": off(8)}],  # b regresses
        [{"stream": "a", "offset": off(6)}, {"stream": "b", "offset": off(10)}],  # b beyond its tail
        [{"stream": "a", "offset": off(6)}, {"stream": "nope", "offset": off(1)}],  # not linked
        [{"stream": "a", "offset": BEFORE_FIRST}],
    ]
    for batch in bad_batches:
        with pytest.raises(SubscriptionError) as refused:
            apply_acks(sub, batch, tails.__getitem__)
        assert refused.value.code == "INVALID_OFFSET"
        assert sub.links["a"].acked_offset == off(4)  # the good half was not applied either
    with pytest.raises(SubscriptionError):
        apply_acks(sub, "a", tails.__getitem__)


def test_offset_order() -> None:
    assert offset_after(off(1), BEFORE_FIRST) and not offset_after(BEFORE_FIRST, off(0))
    assert offset_after(off(10), off(9)) and not offset_after(off(9), off(9))
