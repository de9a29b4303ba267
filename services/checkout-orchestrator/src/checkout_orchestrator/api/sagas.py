"""Routes of ``/sagas``: read-only views of the saga store (the gateway proxies ``GET /sagas/{id}``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from checkout_kit.deps import SessionDep
from checkout_orchestrator.api.models import STATES_BY_STATUS, SagaDetail, SagaList, SagaStatus, SagaSummary
from checkout_orchestrator.domain.state import SagaState
from checkout_orchestrator.storage import sagas

router = APIRouter(prefix="/sagas", tags=["sagas"])

MAX_LIMIT = 500
NOT_FOUND: dict[int | str, dict[str, Any]] = {status.HTTP_404_NOT_FOUND: {"description": "No such saga"}}


@router.get("/{saga_id}", responses=NOT_FOUND)
async def get_saga(saga_id: uuid.UUID, session: SessionDep) -> SagaDetail:
    """The saga's state, outcome and timeline."""
    async with session.begin():
        await sagas.snapshot(session)
        record = await sagas.find(session, saga_id)
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"saga {saga_id} not found")
        steps = await sagas.timeline(session, saga_id)
    return SagaDetail.with_steps(record, steps)


@router.get("")
async def list_sagas(
    session: SessionDep,
    status_filter: Annotated[
        SagaStatus | None, Query(alias="status", description="Only sagas with this status")
    ] = None,
    state: Annotated[SagaState | None, Query(description="Only sagas in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many")] = 50,
) -> SagaList:
    """Sagas newest first, filtered by status and/or state."""
    states: set[SagaState] | None = None
    if status_filter is not None:
        states = set(STATES_BY_STATUS[status_filter])
    if state is not None:
        states = {state} if states is None else states & {state}
    if states is not None and not states:
        return SagaList(sagas=[])
    async with session.begin():
        records = await sagas.search(session, states=states, limit=limit)
    return SagaList(sagas=[SagaSummary.of(record) for record in records])
