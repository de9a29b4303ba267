"""The gateway's tables (accepted checkouts, the outbox) and the queries on them."""
