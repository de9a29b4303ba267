"""The order service's tables and the queries on them."""
