"""The saga's invariants, checked against the services' own tables after a run.

Used by the saga's integration tests, the e2e suite, the benchmarks and the fault-injection
matrix alike, so "correct" means one thing everywhere.
"""

from checkout_invariants.checker import Report, Schemas, Violation, check, snapshot_stock

__all__ = ["Report", "Schemas", "Violation", "check", "snapshot_stock"]
