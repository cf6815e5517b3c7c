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
    │   └── CallbackTimeout        a callback's timeout or heartbeat timeout passed
    ├── CallbackFailed             a callback was failed with fail_callback()
    ├── UnknownCallbackError       no open callback has that id
    ├── UnknownRunError            no suspended or blocked run has that id (cancel)
    ├── WorkflowTimeoutError       a run used up its time budget
    ├── SideeffectError            a journaled side-effect error that cannot be rebuilt
    │   └── SideeffectInterrupted  an at-most-once attempt was interrupted
    ├── ChildWorkflowError         a child run started by c.invoke() failed
    ├── CorruptStateError          the store holds data this engine cannot read
    └── StoreError                 the store backend failed (the cause is chained)
        ├── RootConflict           the root's version is no longer the expected one
        └── BlobNotFound           a requested blob does not exist
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


class RootConflict(StoreError):
    """Raised by ``Store.write_root`` when the expected version is no longer current."""


class BlobNotFound(StoreError):
    """Raised by ``Store.get_blobs`` when a requested blob does not exist."""

    def __init__(self, blob_id: str) -> None:
        super().__init__(f"blob {blob_id} does not exist")
        self.blob_id = blob_id


class CallbackTimeout(EventWaitTimeout):
    """Raised by ``Callback.result()`` when its timeout or heartbeat timeout passed."""


class CallbackFailed(TtflowError):
    """Raised by ``Callback.result()`` when the callback was failed; ``error_message``."""

    def __init__(self, message: str, *, error_message: str) -> None:
        super().__init__(message)
        self.error_message = error_message


class UnknownCallbackError(TtflowError):
    """Raised when a callback id names no open callback."""


class UnknownRunError(TtflowError):
    """Raised when a run id names no suspended or blocked run."""


class WorkflowTimeoutError(TtflowError):
    """Raised into a run (and recorded as its failure) when its time budget is spent."""


class SideeffectError(TtflowError):
    """Raised on replay of a journaled side-effect error whose type cannot be rebuilt.

    ``error_type`` is the qualified type name (``module.Class``), ``error_message`` is
    ``str()`` of the original exception.
    """

    def __init__(self, message: str, *, error_type: str, error_message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.error_message = error_message


class SideeffectInterrupted(SideeffectError):
    """Raised when an at-most-once side-effect attempt was interrupted before its outcome."""


class ChildWorkflowError(TtflowError):
    """Raised by ``c.invoke()`` when the child run failed; ``error_type``, ``error_message``."""

    def __init__(self, message: str, *, error_type: str, error_message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.error_message = error_message
