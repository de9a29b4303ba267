"""What moves sagas: the consumer of checkout events and the deadline scanner, both writing through outcomes."""
