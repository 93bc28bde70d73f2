"""The Kafka-facing side of restate-stream: the only package that imports Kafka clients."""

from connectors.admin import KafkaUnavailableError, PartitionLag, TopicAdmin, wait_for_broker
from connectors.produce import ProduceError, Record, produce_records

__all__ = [
    "KafkaUnavailableError",
    "PartitionLag",
    "ProduceError",
    "Record",
    "TopicAdmin",
    "produce_records",
    "wait_for_broker",
]
