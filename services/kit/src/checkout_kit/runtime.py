"""Run a service's app under uvicorn: uvloop, the configured listener, logging, graceful shutdown.

On SIGTERM (Kubernetes stopping the pod) or SIGINT, uvicorn stops accepting connections, lets
in-flight requests finish for up to ``shutdown_grace_s``, then runs the lifespan's shutdown,
which stops background components (bounded by the same grace) and closes the clients; the last
spans are flushed after that. The pod's ``terminationGracePeriodSeconds`` should therefore exceed
twice ``shutdown_grace_s``.
"""

from __future__ import annotations

import logging.config
import math
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from checkout_kit.settings import ServiceSettings
from checkout_kit.tracing import install_tracing, shutdown_tracing

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """One handler on the root logger; uvicorn's loggers propagate to it."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": LOG_FORMAT}},
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
            },
            "root": {"level": level, "handlers": ["stderr"]},
            "loggers": {
                "uvicorn": {"level": level, "handlers": [], "propagate": True},
                "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
                "uvicorn.access": {"level": level, "handlers": [], "propagate": True},
            },
        }
    )


def uvicorn_config(app: FastAPI, settings: ServiceSettings) -> uvicorn.Config:
    """The server configuration for ``app`` from ``settings``."""
    return uvicorn.Config(
        app,
        host=settings.http.host,
        port=settings.http.port,
        loop="uvloop",
        lifespan="on",
        log_config=None,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
        server_header=False,
        # uvicorn's default trusts X-Forwarded-For from 127.0.0.1, and every peer is a local proxy here
        # (the Services' proxies, a sidecar in a cluster): a client could forge its address and get a
        # fresh rate-limit bucket per request. The gateway reads a client header only when configured
        # to (RATE_LIMIT__CLIENT_HEADER).
        proxy_headers=False,
    )


def serve(app_factory: Callable[[SettingsT], FastAPI], settings: SettingsT) -> None:
    """Build the app from ``settings`` and serve it until SIGTERM/SIGINT; exit non-zero if startup fails.

    The process's tracing SDK (from the ``OTEL_*`` variables, see :mod:`checkout_kit.tracing`) is
    installed before the app is built and flushed once the server and the app's lifespan stopped.
    """
    configure_logging(settings.log_level)
    provider = install_tracing(settings.service_name)
    try:
        server = uvicorn.Server(uvicorn_config(app_factory(settings), settings))
        server.run()
    finally:
        shutdown_tracing(provider)
    if server.started is False:
        # uvicorn returns (rather than exits) when the lifespan refused to start, e.g. on a stale schema.
        raise SystemExit(3)
