"""The order service's HTTP API: orders and their lines, read-only."""
