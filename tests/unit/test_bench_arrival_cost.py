"""benchmarks/arrival_cost.py: both kinds carry the same records, and a key's later sends
come past its earlier ones (else the high-water drops them and the wait for the count hangs)."""

import json

from benchmarks.arrival_cost import bridge_body, ours_body, sends
from restate_stream.batch.wire import decode_batch


def test_both_bodies_carry_the_same_offsets_and_values() -> None:
    ours = decode_batch(ours_body("key-1", 800, 3))
    bridge = json.loads(bridge_body(800, 3))
    assert [(r.offset, json.loads(r.value or b"")) for r in ours] == [
        (item["o"], item["v"]) for item in bridge
    ]
    assert [r.offset for r in ours] == [800, 801, 802]
    assert {r.key for r in ours} == {b"key-1"}


def test_a_keys_sends_follow_one_another() -> None:
    requests = sends("ours", "t-", keys=2, waves=3, per=4)
    assert len(requests) == 6
    for key in ("t-key-0", "t-key-1"):
        bodies = [body for path, body in requests if f"/{key}/" in path]
        offsets = [r.offset for body in bodies for r in decode_batch(body)]
        assert offsets == list(range(12))
