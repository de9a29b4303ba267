"""The gateway's own request dependencies (the kit's cover the runtime, settings and sessions)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from checkout_gateway.upstreams import Upstreams


def get_upstreams(request: Request) -> Upstreams:
    """The upstream clients the app's lifespan opened."""
    upstreams = getattr(request.app.state, "upstreams", None)
    if not isinstance(upstreams, Upstreams):
        raise RuntimeError("no upstream clients: the app was not built by checkout_gateway.main.create_app")
    return upstreams


UpstreamsDep = Annotated[Upstreams, Depends(get_upstreams)]
