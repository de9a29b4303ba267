"""The real local stack of CheckoutPlatform, run as processes on 127.0.0.1 without Docker.

Each component (PostgreSQL, Kafka, a Kubernetes control plane with kwok, Jaeger, Prometheus,
toxiproxy) is installed by package name with its ordinary client, cached under a directory keyed by
version, started with a health check, and stopped without leaving orphans.
"""
