"""``python -m checkout_operator``: run the operator (kopf's ``run`` with our settings and registry).

Locally: ``KUBECONFIG=… PEERING__STANDALONE=true WORKLOADS__HELM_BINARY=… python -m checkout_operator``
(``make operator`` does this against the local stack). In a Pod: the chart sets the environment.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import kopf

from checkout_operator.handlers import build_registry
from checkout_operator.settings import OperatorSettings


def main() -> None:
    """Build the settings once, then hand control to kopf until SIGTERM/SIGINT."""
    settings = OperatorSettings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    registry = build_registry(settings)
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=liveness,
            standalone=settings.peering.standalone,
            peering_name=None if settings.peering.standalone else settings.peering.name,
        )
    )


if __name__ == "__main__":
    main()
