"""The cart's tables and the queries on them."""
