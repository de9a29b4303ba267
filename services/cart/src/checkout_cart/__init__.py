"""The cart service: carts and their lines over HTTP, in its own PostgreSQL schema."""
