"""The public HTTP API: starts checkouts, reports their status, proxies carts."""
