"""Errors raised by ttflow-async.

Every error derives from :class:`TtflowError`::

    TtflowError
    ├── UnknownRepositoryError     the store spec string is not understood
    ├── StateLockedError           another runner holds the lease (.queued)
    ├── InvalidStateError          a reserved name or a value that is not strict JSON
    ├── WorkflowDefinitionError    a workflow cannot be registered
    ├── WorkflowDirectCallError    a workflow function was called directly
    ├── SideeffectUsageError       a side effect was called without its RunContext
    ├── UnknownTriggerError        nothing listens to the trigger given to run()
    ├── NondeterminismError        replay reached a different call than the journal
    ├── EventWaitTimeout           wait_event() timed out
    ├── CorruptStateError          the store holds data this engine cannot read
    └── StoreError                 the store backend failed (the cause is chained)
"""

from __future__ import annotations


class TtflowError(Exception):
    """Raised for every error of ttflow-async (the root of the tree)."""


class UnknownRepositoryError(TtflowError):
    """Raised when ``setup()`` gets a store spec it does not understand."""


class StateLockedError(TtflowError):
    """Raised when another runner holds the store's lease.

    ``queued`` is True when the trigger given to ``run()`` was stored durably in the
    inbox before raising: it fires exactly once, in a later pass.
    """

    def __init__(self, message: str, *, queued: bool = False) -> None:
        super().__init__(message)
        self.queued = queued


class InvalidStateError(TtflowError):
    """Raised when a state name is reserved or a value is not strict JSON."""


class WorkflowDefinitionError(TtflowError):
    """Raised when a workflow or side effect cannot be registered."""


class WorkflowDirectCallError(TtflowError):
    """Raised when a registered workflow function is called directly."""


class SideeffectUsageError(TtflowError):
    """Raised when a side effect is called without a RunContext first."""


class UnknownTriggerError(TtflowError):
    """Raised when ``run(name)`` names a trigger nothing listens to."""


class NondeterminismError(TtflowError):
    """Raised inside a run when replay reaches a different call than its journal."""


class EventWaitTimeout(TtflowError):
    """Raised by ``wait_event()`` once its timeout has passed without the event."""


class CorruptStateError(TtflowError):
    """Raised when the store holds data this engine cannot read (it is never overwritten)."""


class StoreError(TtflowError):
    """Raised when the storage backend fails; the backend's error is the ``__cause__``."""
