"""The inventory's tables and the queries on them."""
