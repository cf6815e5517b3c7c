"""The client: registration, ``run()``, the inbox, inspection and administration.

:class:`Client` is composed of one mixin per concern, each in a module of its own:
``_client_core`` (options, connections, guarded store calls, the lease),
``_client_registration``, ``_client_running``, ``_client_callbacks``,
``_client_inspection`` and ``_client_admin``.
"""

from __future__ import annotations

from typing import Any

from ._client_admin import AdminMixin
from ._client_callbacks import CallbacksMixin
from ._client_core import READ_ATTEMPTS
from ._client_inspection import InspectionMixin
from ._client_registration import RegistrationMixin
from ._client_running import RunningMixin
from ._stores import Store, store_from_spec

__all__ = ["CLIENT_OPTIONS", "READ_ATTEMPTS", "Client", "setup"]


class Client(RegistrationMixin, RunningMixin, CallbacksMixin, InspectionMixin, AdminMixin):
    """A ttflow-async client bound to one store.

    Use it as ``async with setup(...) as client:`` to open the store's connections
    once; without it, every call opens and closes what it needs.
    """


CLIENT_OPTIONS = (
    "lease_seconds",
    "max_concurrency",
    "max_waves",
    "run_timeout",
    "idempotency_window",
    "clock",
)


def setup(spec_or_repository: str | Store = "local:state.json", **options: Any) -> Client:
    """Create a client for a store spec (``"local:state.json"``, ``"onmemory"``, ...).

    Options: ``lease_seconds`` (default 60), ``max_concurrency`` (default 64),
    ``max_waves`` (default 100), ``run_timeout`` (seconds or timedelta; default none),
    ``idempotency_window`` (default 24 h), ``clock`` (a callable returning epoch
    seconds; default ``time.time``); other options are passed to the store backend.
    """
    client_options = {k: options.pop(k) for k in CLIENT_OPTIONS if k in options}
    if isinstance(spec_or_repository, str):
        store = store_from_spec(spec_or_repository, **options)
    else:
        candidate: object = spec_or_repository
        if not isinstance(candidate, Store):
            from ._errors import UnknownRepositoryError
            from ._stores import ACCEPTED_FORMS

            raise UnknownRepositoryError(
                f"setup() takes a store spec string ({ACCEPTED_FORMS}) or an object "
                f"implementing the store protocol, not {type(candidate).__name__}"
            )
        store = candidate
    return Client(store, **client_options)
