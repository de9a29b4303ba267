"""One reconciler per concern: topics (Kafka), database (PostgreSQL), workloads (Kubernetes)."""
