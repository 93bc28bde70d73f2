"""restate-stream: Kafka-centric event processing on Restate."""

__version__ = "0.1.0"
