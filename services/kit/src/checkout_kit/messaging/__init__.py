"""Kafka messaging: the CloudEvents envelope, the protobuf/JSON codec, producer, consumer, dead letters."""
