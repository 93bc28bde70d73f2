"""The Kafka-facing side of restate-stream: the only package that imports Kafka clients."""

from connectors.admin import PartitionLag, Replicas, TopicAdmin
from connectors.errors import KafkaAdminError, KafkaClientConfigError, KafkaUnavailableError
from connectors.produce import Record, produce_records
from connectors.producer import (
    AioKafkaProducer,
    ConfluentProducer,
    Delivery,
    KafkaProducer,
    ProduceError,
    ProduceFailed,
    ProducerRecord,
    create_producer,
)

__all__ = [
    "AioKafkaProducer",
    "ConfluentProducer",
    "Delivery",
    "KafkaAdminError",
    "KafkaClientConfigError",
    "KafkaProducer",
    "KafkaUnavailableError",
    "PartitionLag",
    "ProduceError",
    "ProduceFailed",
    "ProducerRecord",
    "Record",
    "Replicas",
    "TopicAdmin",
    "create_producer",
    "produce_records",
]
