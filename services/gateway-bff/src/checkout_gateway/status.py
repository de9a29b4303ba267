"""A saga as the public sees it: the orchestrator's state folded into PENDING, COMPLETED or FAILED."""

from __future__ import annotations

from typing import Final

from checkout_gateway.api.models import CheckoutStatus, CheckoutStatusValue, OrchestratorSaga, SagaStep
from checkout_gateway.storage.tables import CheckoutRow

STARTED: Final = "STARTED"
"""The orchestrator's first state; also what the gateway reports before the orchestrator saw the saga."""
TERMINAL: Final[dict[str, CheckoutStatusValue]] = {"COMPLETED": "COMPLETED", "FAILED": "FAILED"}
"""Terminal saga states and their public status; every other state (COMPENSATING included) is PENDING."""


def public_status(state: str) -> CheckoutStatusValue:
    """PENDING until the saga is terminal."""
    return TERMINAL.get(state, "PENDING")


def from_orchestrator(saga: OrchestratorSaga) -> CheckoutStatus:
    """The checkout's status from the orchestrator's saga."""
    return CheckoutStatus(
        saga_id=saga.saga_id,
        status=public_status(saga.state),
        state=saga.state,
        steps=saga.steps,
        order_id=saga.order_id,
        failure_code=saga.failure_code,
        failure_reason=saga.failure_reason,
        trace_id=saga.trace_id,
    )


def accepted_not_started(checkout: CheckoutRow) -> CheckoutStatus:
    """A checkout the gateway accepted whose ``CheckoutInitiated`` the orchestrator has not processed yet."""
    return CheckoutStatus(
        saga_id=checkout.saga_id,
        status="PENDING",
        state=STARTED,
        steps=[
            SagaStep(
                at=checkout.created_at,
                state=STARTED,
                event="CheckoutInitiated",
                detail="accepted by the gateway; waiting for the orchestrator to pick it up",
            )
        ],
        trace_id=checkout.trace_id,
    )
