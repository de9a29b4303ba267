"""The payment service's HTTP API: charges and their refunds, read-only."""
