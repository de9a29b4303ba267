"""The fault matrix on the platform: every row must lose nothing, charge no one twice, leave nothing stuck.

``make test`` runs the short form (the rows marked short); ``make chaos`` (``CHAOS_FULL=1``) runs
every row and renders RELIABILITY.md from the ledger.
"""

from __future__ import annotations

import os

import pytest
from fault_matrix import PLATFORM_FAULTS, Chaos, Fault, Timing, row_sku, run_row

pytestmark = pytest.mark.integration

FULL = os.environ.get("CHAOS_FULL") == "1"


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("index", "fault"), list(enumerate(PLATFORM_FAULTS)), ids=[f.label for f in PLATFORM_FAULTS])
def test_fault_under_load(chaos: Chaos, index: int, fault: Fault) -> None:
    if not (FULL or fault.short):
        pytest.skip("full matrix only: `make chaos` (CHAOS_FULL=1) runs this row")
    row = run_row(chaos, fault, row_sku(index), chaos.platform.stock_before, Timing())
    assert row.holds, (
        f"{fault.label}: lost {row.lost}, duplicated {row.duplicated}, stuck {row.stuck}, "
        f"stock conserved {row.stock_conserved}, lag drained {row.lag_drained}, recovery {row.recovery_s} s\n"
        f"{row.detail}"
    )
