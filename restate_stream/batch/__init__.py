"""Batched bindings: restate-stream's own Kafka consumer delivers one Restate invocation per
object key per batch, and the object drops what it has applied before (a per-partition
high-water offset in its own state), so records are applied exactly once at Kafka speed.

The object side is `handler` (installed by `restate_stream.runtime.bound.bind` for bindings
with `batch:`), the delivery side `delivery`, the body between them `wire`.
"""

from restate_stream.batch.delivery import BatchDelivery
from restate_stream.batch.handler import BatchBoundHandler, batch_handler
from restate_stream.batch.runner import BatchRunner
from restate_stream.batch.sends import idempotency_key, record_idempotency_key
from restate_stream.batch.wire import WireError, WireRecord, decode_batch, encode_batch
from restate_stream.bindings.model import BatchSpec
from restate_stream.runtime.high_water import high_water_state
from restate_stream.runtime.signature import batch_value_type

__all__ = [
    "BatchBoundHandler",
    "BatchDelivery",
    "BatchRunner",
    "BatchSpec",
    "WireError",
    "WireRecord",
    "batch_handler",
    "batch_value_type",
    "decode_batch",
    "encode_batch",
    "high_water_state",
    "idempotency_key",
    "record_idempotency_key",
]
