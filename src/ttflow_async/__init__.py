"""ttflow-async: an asyncio-native durable workflow runtime.

Workflows are plain ``async def`` functions; every ``await client.run()`` is one short
pass that takes a lease, replays and advances what is ready, commits atomically and
releases. State lives in a local file by default, or in S3 or DynamoDB.

The result and inspection records (pydantic models) and the batch records of
``c.parallel``/``c.map`` are imported when first asked for, so that ``import
ttflow_async`` builds no model and stays cheap (issue 14).
"""

from importlib import import_module
from typing import TYPE_CHECKING

from ._client import Client as Client
from ._client import setup as setup
from ._composition import Callback as Callback
from ._context import RunContext as RunContext
from ._errors import BlobNotFound as BlobNotFound
from ._errors import CallbackFailed as CallbackFailed
from ._errors import CallbackTimeout as CallbackTimeout
from ._errors import ChildWorkflowError as ChildWorkflowError
from ._errors import CorruptStateError as CorruptStateError
from ._errors import EventWaitTimeout as EventWaitTimeout
from ._errors import InvalidStateError as InvalidStateError
from ._errors import NondeterminismError as NondeterminismError
from ._errors import RootConflict as RootConflict
from ._errors import SideeffectError as SideeffectError
from ._errors import SideeffectInterrupted as SideeffectInterrupted
from ._errors import SideeffectUsageError as SideeffectUsageError
from ._errors import StateLockedError as StateLockedError
from ._errors import StoreError as StoreError
from ._errors import TtflowError as TtflowError
from ._errors import UnknownCallbackError as UnknownCallbackError
from ._errors import UnknownRepositoryError as UnknownRepositoryError
from ._errors import UnknownRunError as UnknownRunError
from ._errors import UnknownTriggerError as UnknownTriggerError
from ._errors import WorkflowDefinitionError as WorkflowDefinitionError
from ._errors import WorkflowDirectCallError as WorkflowDirectCallError
from ._errors import WorkflowTimeoutError as WorkflowTimeoutError
from ._retry import RetryPolicy as RetryPolicy
from ._stores import Store as Store
from ._triggers import Trigger as Trigger
from ._triggers import event_trigger as event_trigger
from ._triggers import every_trigger as every_trigger
from ._triggers import state_trigger as state_trigger

if TYPE_CHECKING:
    from ._batch import BatchItem as BatchItem
    from ._batch import BatchResult as BatchResult
    from ._batch import CompletionConfig as CompletionConfig
    from ._records import CheckResult as CheckResult
    from ._records import ContextData as ContextData
    from ._records import EventLogEntry as EventLogEntry
    from ._records import LockInfo as LockInfo
    from ._records import PausedRun as PausedRun
    from ._records import RunHistoryEntry as RunHistoryEntry
    from ._records import RunInfo as RunInfo
    from ._records import StateAppend as StateAppend
    from ._records import StateChange as StateChange
    from ._records import Trace as Trace
    from ._records import TraceExecution as TraceExecution
    from ._records import TriggerInfo as TriggerInfo
    from ._records import WorkflowInfo as WorkflowInfo
    from ._records import WorkflowRunResult as WorkflowRunResult

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "BatchItem": "._batch",
    "BatchResult": "._batch",
    "CompletionConfig": "._batch",
    "CheckResult": "._records",
    "ContextData": "._records",
    "EventLogEntry": "._records",
    "LockInfo": "._records",
    "PausedRun": "._records",
    "RunHistoryEntry": "._records",
    "RunInfo": "._records",
    "StateAppend": "._records",
    "StateChange": "._records",
    "Trace": "._records",
    "TraceExecution": "._records",
    "TriggerInfo": "._records",
    "WorkflowInfo": "._records",
    "WorkflowRunResult": "._records",
}
"""Public names imported on first access (PEP 562), and the module defining each."""


def _lazy_attribute(name: str) -> object:
    """Import a public name of :data:`_LAZY` from its module and keep it in the package."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value: object = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def _public_dir() -> list[str]:
    """What ``dir(ttflow_async)`` lists: the loaded names and every lazy public name."""
    return sorted({*globals(), *_LAZY})


if not TYPE_CHECKING:
    # Hidden from type checkers, which see the real imports above: a module-level
    # __getattr__ would let them accept any misspelt name as Any.
    __getattr__ = _lazy_attribute
    __dir__ = _public_dir

__all__ = [
    "BatchItem",
    "BatchResult",
    "BlobNotFound",
    "Callback",
    "CallbackFailed",
    "CallbackTimeout",
    "CheckResult",
    "ChildWorkflowError",
    "Client",
    "CompletionConfig",
    "ContextData",
    "CorruptStateError",
    "EventLogEntry",
    "EventWaitTimeout",
    "InvalidStateError",
    "LockInfo",
    "NondeterminismError",
    "PausedRun",
    "RetryPolicy",
    "RootConflict",
    "RunContext",
    "RunHistoryEntry",
    "RunInfo",
    "SideeffectError",
    "SideeffectInterrupted",
    "SideeffectUsageError",
    "StateAppend",
    "StateChange",
    "StateLockedError",
    "Store",
    "StoreError",
    "Trace",
    "TraceExecution",
    "Trigger",
    "TriggerInfo",
    "TtflowError",
    "UnknownCallbackError",
    "UnknownRepositoryError",
    "UnknownRunError",
    "UnknownTriggerError",
    "WorkflowDefinitionError",
    "WorkflowDirectCallError",
    "WorkflowInfo",
    "WorkflowRunResult",
    "WorkflowTimeoutError",
    "event_trigger",
    "every_trigger",
    "setup",
    "state_trigger",
]
