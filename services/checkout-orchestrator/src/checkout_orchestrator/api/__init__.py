"""The orchestrator's HTTP API: saga status for the gateway and for operators."""
