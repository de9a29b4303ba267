"""FastAPI dependencies for request handlers, as ``Annotated`` aliases.

Handlers declare what they need by type::

    @router.get("/carts/{cart_id}")
    async def get_cart(cart_id: UUID, session: SessionDep) -> Cart: ...

The session is opened per request and closed after it; the handler decides the transaction
(``async with session.begin(): ...``), so a response is only sent once its commit succeeded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from checkout_kit.app import Runtime
from checkout_kit.settings import ServiceSettings

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def get_runtime(request: Request) -> Runtime:
    """The runtime the app's lifespan built."""
    runtime = getattr(request.app.state, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise RuntimeError("no runtime: the app was not started through its lifespan")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> ServiceSettings:
    """The service's settings."""
    return runtime.settings


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]


def settings_of(settings_class: type[SettingsT]) -> Callable[[Request], SettingsT]:
    """A dependency returning the settings as the service's own class, for its own fields.

    ``CartSettingsDep = Annotated[CartSettings, Depends(settings_of(CartSettings))]``
    """

    def dependency(request: Request) -> SettingsT:
        settings = get_runtime(request).settings
        if not isinstance(settings, settings_class):
            raise TypeError(f"the app runs with {type(settings).__name__}, not {settings_class.__name__}")
        return settings

    return dependency


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """A database session for one request, closed (and rolled back if left open) afterwards."""
    async with runtime.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
