"""The checkout saga's orchestrator.

Saga state in PostgreSQL, commands through the outbox, deadlines and compensation.
"""
