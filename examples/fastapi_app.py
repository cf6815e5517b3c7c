"""ttflow-async inside a FastAPI app: one ``await client.run()`` per request.

The app enters the client once in its lifespan (``async with client``), so the
store's connections are shared by every request. A request fires a trigger and
answers with the runs it caused; a run that waits (for a payment here) is resumed by
a later request. Two requests at once take turns on the store's lock
(``lock_timeout``); one that still finds it held is answered 202: its trigger is
queued and fires in the next pass.

``python examples/fastapi_app.py`` plays a few requests in-process (needs httpx);
``python examples/fastapi_app.py --serve`` serves it with uvicorn on 127.0.0.1:8000.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ttflow_async import (
    EventWaitTimeout,
    RunContext,
    StateLockedError,
    UnknownTriggerError,
    WorkflowRunResult,
    setup,
)

STATE_DIR = Path(
    os.environ.get("TTFLOW_ASYNC_EXAMPLES_DIR")
    or Path(tempfile.gettempdir()) / "ttflow-async-examples"
)
client = setup(f"local:{STATE_DIR / 'fastapi_app.json'}")


class Order(BaseModel):
    item: str
    quantity: int


class Payment(BaseModel):
    amount: int


@client.sideeffect()
async def reserve_stock(c: RunContext, item: str, quantity: int) -> str:
    """Reserve stock (a real one would call the warehouse); returns a reservation id."""
    return f"rsv-{item}-{quantity}-{c.run_id[:8]}"


@client.workflow()
async def place_order(c: RunContext, order: Order) -> None:
    """Reserve, wait up to an hour for the payment, then confirm or release."""
    reservation = await reserve_stock(c, order.item, order.quantity)
    await c.log(f"reserved {order.quantity} x {order.item} ({reservation})")
    try:
        payment = await c.wait_event(f"payment:{c.run_id}", timeout=timedelta(hours=1))
    except EventWaitTimeout:
        await c.log("no payment within an hour: reservation released")
        return
    await c.log(f"paid {payment['amount']}: order confirmed")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with client:
        yield


app = FastAPI(title="orders", lifespan=lifespan)


async def run_trigger(trigger: str, args: Any) -> JSONResponse:
    """Fire ``trigger`` and answer 200 with the runs, or 202 if queued behind the lock."""
    try:
        results = await client.run(trigger, args, lock_timeout=5)
    except StateLockedError as exc:
        return JSONResponse({"queued": exc.queued, "detail": str(exc)}, status_code=202)
    except UnknownTriggerError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    return JSONResponse({"runs": [describe(result) for result in results]})


def describe(result: WorkflowRunResult) -> dict[str, Any]:
    return {
        "workflow": result.workflow_name,
        "run_id": result.run_id,
        "status": result.status,
        "logs": result.logs,
    }


@app.post("/orders")
async def create_order(order: Order) -> JSONResponse:
    return await run_trigger("place_order", order.model_dump())


@app.post("/orders/{run_id}/payment")
async def pay(run_id: str, payment: Payment) -> JSONResponse:
    return await run_trigger(f"payment:{run_id}", payment.model_dump())


@app.get("/orders/waiting")
async def waiting_orders() -> list[dict[str, Any]]:
    return [
        {"run_id": run.run_id, "since": run.since.isoformat(), "waiting_for": run.waiting_for}
        for run in await client.paused_runs()
        if run.workflow_name == "place_order"
    ]


async def demo() -> int:
    import httpx

    async with lifespan(app):
        await client.clear_state()  # every demo starts from an empty store
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as http:
            created = await http.post("/orders", json={"item": "lemon", "quantity": 3})
            run_id = created.json()["runs"][0]["run_id"]
            print(f"POST /orders -> {created.status_code} {created.json()}")
            waiting = await http.get("/orders/waiting")
            print(f"GET /orders/waiting -> {waiting.status_code} {waiting.json()}")
            paid = await http.post(f"/orders/{run_id}/payment", json={"amount": 450})
            print(f"POST /orders/{run_id}/payment -> {paid.status_code} {paid.json()}")
            again = await http.post(f"/orders/{run_id}/payment", json={"amount": 450})
            print(f"paying twice -> {again.status_code} {again.json()}")
    done = paid.json()["runs"][0]["status"] == "succeeded"
    return 0 if done and again.status_code == 404 else 1


if __name__ == "__main__":
    if "--serve" in sys.argv:
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=8000)
    else:
        sys.exit(asyncio.run(demo()))
