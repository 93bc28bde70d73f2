"""restate-stream: Kafka-centric event processing on Restate.

The names a handler module needs; the rest lives in the submodules (`restate_stream.control.admin`,
`.plan`, `.apply`, `.stack`, `.testing`, ...).
"""

from restate_stream.bindings import BindingsError, load_bindings
from restate_stream.runtime.event import KafkaEvent
from restate_stream.runtime.publisher import Outgoing, Published, Publisher

__version__ = "0.1.0"

__all__ = ["BindingsError", "KafkaEvent", "Outgoing", "Published", "Publisher", "load_bindings"]
