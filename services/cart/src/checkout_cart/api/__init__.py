"""The cart's HTTP API: request/response models and routes."""
