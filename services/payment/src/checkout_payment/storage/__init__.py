"""The payment service's tables and the queries on them."""
