"""A simulated payment provider, and the client the order workflow pays with.

The provider is a virtual object keyed by order id so that every charge and refund it books
is observable (`ledger`). Like a real payment API it is idempotent per payment id: a retried
request for the same payment returns the first receipt. Two *different* payment ids for one
order would show up as two charges, which is what the tests look for.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

import restate
from restate import RunOptions

from examples.food_ordering import ingress
from examples.food_ordering.model import Ledger, Receipt
from examples.food_ordering.settings import RETRY

CARD_LIMIT_CENTS = 100_000  # the simulated card declines anything above this

# Charging retries transient failures a few times, then gives up (and the order is cancelled).
CHARGE_RETRY: RunOptions[Receipt] = RunOptions(
    max_attempts=5,
    initial_retry_interval=timedelta(milliseconds=200),
    max_retry_interval=timedelta(seconds=2),
)
# A refund is a compensation: it must happen, so it retries until it does.
REFUND_RETRY: RunOptions[Receipt] = RunOptions(
    initial_retry_interval=timedelta(milliseconds=200),
    max_retry_interval=timedelta(seconds=5),
)

provider = restate.VirtualObject("payment-provider", invocation_retry_policy=RETRY)


class ChargeRequest(TypedDict):
    payment_id: str
    amount_cents: int


def _empty() -> Ledger:
    return {"charges": [], "refunds": []}


@provider.handler()
async def charge(ctx: restate.ObjectContext, request: ChargeRequest) -> Receipt:
    book: Ledger = await ctx.get("ledger") or _empty()
    for receipt in book["charges"]:
        if receipt["payment_id"] == request["payment_id"]:
            return receipt  # the same payment asked again: nothing new is charged
    if request["payment_id"] in book.get("voided", []):
        # The order gave up on this payment (and refunded it) before the charge arrived.
        raise restate.TerminalError(f"payment {request['payment_id']} was voided", 409)
    if request["amount_cents"] > CARD_LIMIT_CENTS:
        raise restate.TerminalError("card declined", 402)
    receipt = Receipt(
        payment_id=request["payment_id"], order_id=ctx.key(), amount_cents=request["amount_cents"]
    )
    book["charges"].append(receipt)
    ctx.set("ledger", book)
    return receipt


@provider.handler()
async def refund(ctx: restate.ObjectContext, payment_id: str) -> Receipt:
    book: Ledger = await ctx.get("ledger") or _empty()
    for receipt in book["refunds"]:
        if receipt["payment_id"] == payment_id:
            return receipt
    charged = [r for r in book["charges"] if r["payment_id"] == payment_id]
    if not charged:
        # Nothing charged (yet): void the payment so a charge still on its way is refused.
        # Calls for one order queue on this object, so a charge sent earlier ran first.
        book["voided"] = [*book.get("voided", []), payment_id]
        ctx.set("ledger", book)
        return Receipt(payment_id=payment_id, order_id=ctx.key(), amount_cents=0)
    book["refunds"].append(charged[0])
    ctx.set("ledger", book)
    return charged[0]


@provider.handler(kind="shared")
async def ledger(ctx: restate.ObjectSharedContext) -> Ledger:
    return await ctx.get("ledger") or _empty()


# --- the client side: what the order workflow runs inside ctx.run ---------------------------


async def charge_card(order_id: str, payment_id: str, amount_cents: int) -> Receipt:
    request = ChargeRequest(payment_id=payment_id, amount_cents=amount_cents)
    return await ingress.object_call(
        charge, order_id, request, idempotency_key=f"charge-{payment_id}"
    )


async def refund_card(order_id: str, payment_id: str) -> Receipt:
    return await ingress.object_call(
        refund, order_id, payment_id, idempotency_key=f"refund-{payment_id}"
    )
