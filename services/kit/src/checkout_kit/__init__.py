"""The shared runtime every CheckoutPlatform service imports (and that imports no service).

Split by capability: ``settings`` (environment → typed settings), ``topics``, ``messaging``
(envelope, codec, producer, consumer, dead letters), ``outbox`` and ``inbox`` (exactly-once
effects over at-least-once delivery), ``db``, ``migrations``, ``health``, ``metrics``,
``telemetry`` (the tracing seams) and ``app`` (the FastAPI application factory and lifespan).
"""
