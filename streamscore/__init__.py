"""streamscore: exactly-once ML scoring of Kafka streams on Apache Flink."""

__version__ = "0.1.0"
