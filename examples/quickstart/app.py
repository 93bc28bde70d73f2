"""The worker's app: one virtual object per account, keyed by the Kafka record key."""

from __future__ import annotations

from typing import Any

import restate

account = restate.VirtualObject("Account")


@account.handler()
async def apply_payment(ctx: restate.ObjectContext, payment: dict[str, Any]) -> None:
    # Exclusive handler: one invocation per account at a time, in partition order.
    balance: int = await ctx.get("balance") or 0
    ctx.set("balance", balance + int(payment["amount_cents"]))
    payments: int = await ctx.get("payments", type_hint=int) or 0
    ctx.set("payments", payments + 1)


@account.handler(kind="shared")
async def balance(ctx: restate.ObjectSharedContext) -> int:
    return await ctx.get("balance") or 0


app = restate.app([account])
