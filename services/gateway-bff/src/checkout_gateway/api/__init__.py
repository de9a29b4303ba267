"""The gateway's public HTTP API: checkout (start, status) and the cart proxy."""
