"""Pacing a batched binding's sends of one object key on Restate completing the previous one.

Paced only by acceptance (202), a key can get a send per cut whatever Restate's pace: with
100 keys and a cut every 50 ms, up to 2,000 invocations/s, each costing restate-server and
the worker a millisecond or two of CPU whatever its size, and as many at a lower record rate
(the cuts are made by max_wait either way). Waiting for the previous invocation to complete
before posting the next lets the key's records join the waiting send meanwhile: sends grow
under load instead of multiplying, and the invocation rate follows what Restate completes.
Measured on a loaded 2-core machine (benchmarks/batch_latency.py --completion-wait 0,1,...,
warm paired rounds) it was within noise of acceptance pacing there: slow acceptances and the
send slots (8 then) already made sends join; the gain is expected where acceptance is much
faster than completion (a quiet machine). Letting one more invocation per key be unfinished
(`unfinished=1`: the next send queued in Restate behind the running one) was measured too
(32 slots, 100 keys, 6,000 records/s, load 10-11): more invocations, each accepted and run
later, p50 0.50-0.58 s against 0.40-0.43 s; so the default waits for the previous one.

Completion is a pacing signal only, never a condition for committing (that stays the 202):
the wait is bounded by `COMPLETION_WAIT` after the previous send was accepted, and a key
whose invocation outlives it (paused, retrying, a slow handler) is paced by acceptance alone
until that invocation completes, so a stuck key neither stalls other keys nor fills the
consumer's in-flight bounds with one send per `COMPLETION_WAIT`.

How completion is learnt: in a stream, the send is a call answered at completion
(`CompletionPacer.call`, for BatchDelivery._call: one request instead of two). After a
one-way send (a backlog was being read, a quarter of the window was in flight, or calls are
off), a key's next send that waits in a stream learns it through the ingress attach endpoint
by idempotency key (while the backlog is still read, its next send does not wait: the
delivery's hold gathers its records)
(`GET /restate/invocation/{Object}/{key}/{handler}/{idempotency key}/attach`), which answers
once the invocation completed. It works for a delivery in any process (the benchmark's, or a
worker process other than the one Restate ran the invocation in, where an in-process signal
from the handler would never arrive), and costs one request only when the key's next send is
already waiting for it (a key whose previous send completed long ago attaches to nothing).
A call merges acceptance into completion: a call still open after COMPLETION_WAIT is followed
by a one-way send with its idempotency key, which tells acceptance, so commits never wait on a
stuck invocation longer than that bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from restate_stream.batch.ingress_client import Answer

# The longest a key's next send waits, after its previous send was accepted, for that
# invocation to complete. Short enough that a stuck key still commits; long enough to
# cover Restate's completion latency under the loads it can serve.
COMPLETION_WAIT = 1.0
# How long an attach to an invocation that outlived COMPLETION_WAIT is kept open (it ends the
# key's acceptance-only pacing when it answers); at most one per key.
STALLED_ATTACH_TIMEOUT = 60.0
ATTACH_CONNECTIONS = 128
PRUNE_AT = 10_000


@dataclass
class _Accepted:
    attach_path: str  # after the ingress URL
    at: float  # monotonic time the send was accepted


class CompletionPacer:
    """Per object key: its last accepted sends not known to have completed, and whether the
    key is stalled (its last waited-for invocation outlived COMPLETION_WAIT and has not
    completed yet).

    `unfinished`: how many of a key's accepted invocations may still be unfinished when its
    next send is posted. 0: the next send waits for the previous invocation; 1: for the one
    before it, so the next invocation is already queued in Restate when the previous one
    completes (Restate runs a key's invocations in arrival order: exactness is unchanged)."""

    def __init__(
        self,
        completion_wait: float = COMPLETION_WAIT,
        max_attaches: int = ATTACH_CONNECTIONS,
        *,
        unfinished: int = 0,
    ) -> None:
        self.ingress_url = ""
        self.completion_wait = completion_wait
        self.max_attaches = max_attaches
        self.unfinished = unfinished
        self._attaches = 0  # open now
        # Calls are held open until their invocation completes (or the client's timeout): as
        # many open at once as attaches; a call keeps its slot until it answers, stalled or not.
        self._call_slots = asyncio.Semaphore(max_attaches)
        # key -> its accepted sends, oldest first, at most `unfinished + 1`
        self._accepted: dict[str, deque[_Accepted]] = {}
        # key -> its attach (or call: `call`) still open
        self._stalled: dict[str, asyncio.Future[Any]] = {}
        self._client: aiohttp.ClientSession | None = None
        self.answers: Counter[int] = Counter()  # attach answers by HTTP status (tests, logs)

    def open(self, client: aiohttp.ClientSession, ingress_url: str) -> None:
        """Attaches go over their own client: held open until completion, they must not take
        the send slots' connections."""
        self._client, self.ingress_url = client, ingress_url

    def accepted(self, key: str, service: str, handler: str, idempotency_key: str) -> None:
        parts = (service, key, handler, idempotency_key)
        path = "restate/invocation/" + "/".join(quote(p, safe="") for p in parts) + "/attach"
        now = time.monotonic()
        if len(self._accepted) >= PRUNE_AT:
            # Keys whose next send never came: their bound has passed, nothing waits on them.
            horizon = now - self.completion_wait
            self._accepted = {k: q for k, q in self._accepted.items() if q[-1].at > horizon}
        queue = self._accepted.get(key)
        if queue is None:
            self._accepted[key] = queue = deque(maxlen=self.unfinished + 1)
        queue.append(_Accepted(path, now))

    async def wait(self, key: str, *, at_once: bool = False) -> None:
        """Before posting `key`'s next send: until at most `unfinished` of its accepted
        invocations are not completed (waiting for the oldest one that must be), at most until
        COMPLETION_WAIT after that one was accepted; at once if the key is stalled, or if told
        so (`at_once`): the wait is for records to join the send, and none can (it is full)
        or others gather them (the delivery's hold while it reads a backlog)."""
        queue = self._accepted.get(key)
        if queue is None or len(queue) <= self.unfinished:
            return
        previous = queue.popleft()
        if not queue:
            del self._accepted[key]
        if at_once or key in self._stalled or self._client is None:
            return
        if self._attaches >= self.max_attaches:
            # As many attaches open as connections (many keys, Restate behind): more would
            # only queue for a connection and add requests to a saturated Restate.
            return
        left = previous.at + self.completion_wait - time.monotonic()
        if left <= 0:
            return  # it had its time: Restate is slower than the bound; do not add a request
        attach = asyncio.create_task(self._attach(previous.attach_path))
        self._attaches += 1
        attach.add_done_callback(self._attached)
        try:
            done, _ = await asyncio.wait([attach], timeout=left)
        except asyncio.CancelledError:
            attach.cancel()
            raise
        if not done:
            self.stalled(key, attach)

    def may_call(self, key: str) -> bool:
        """Whether `key`'s next send may go as a call (`call`): each of its invocations
        finished before the next is posted (`unfinished` 0), the key not stalled, and a call
        slot free (when all are taken, many keys with Restate behind, a one-way send goes, as
        when the attaches are all open)."""
        return self.unfinished == 0 and key not in self._stalled and not self._call_slots.locked()

    async def call(self, key: str, post: Callable[[], Awaitable[Answer]]) -> bool:
        """Post `key`'s send as a call (`post`), answered once its invocation completed: True
        once it answered 200 within COMPLETION_WAIT. False if it answered anything else, raised,
        or outlived the bound; left open then, it paces the key's later sends by acceptance
        until it answers (`stalled`), and the caller learns acceptance by a one-way send with
        the same idempotency key. Only after `may_call(key)`, with nothing awaited since."""
        await self._call_slots.acquire()  # free: `may_call` said so
        call = asyncio.ensure_future(post())
        call.add_done_callback(lambda _: self._call_slots.release())
        try:
            done, _ = await asyncio.wait([call], timeout=self.completion_wait)
        except asyncio.CancelledError:
            call.cancel()
            raise
        if not done:
            self.stalled(key, call)
            return False
        return call.exception() is None and call.result().status == 200

    def stalled(self, key: str, completion: asyncio.Future[Any]) -> None:
        """`key`'s invocation outlived the bound: its sends are paced by acceptance until
        `completion` (an attach, or a call, still open) ends, however it ends."""
        self._stalled[key] = completion

        def ended(future: asyncio.Future[Any]) -> None:
            if self._stalled.get(key) is future:
                del self._stalled[key]
            if not future.cancelled():
                future.exception()  # a call that failed: nothing to report, the send went on

        completion.add_done_callback(ended)

    async def _attach(self, path: str) -> bool:
        """True once the invocation completed (whatever its outcome); False if the attach
        itself failed (then the key's sends are paced by acceptance, as before)."""
        assert self._client is not None
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self._client.get(f"{self.ingress_url}/{path}") as response:
                await response.read()
                self.answers[response.status] += 1
                return True
        return False

    def _attached(self, _: asyncio.Task[bool]) -> None:
        self._attaches -= 1

    async def close(self) -> None:
        """Forget every key; cancel the attaches still open."""
        stalled = list(self._stalled.values())
        self._accepted.clear()
        for task in stalled:
            task.cancel()
        await asyncio.gather(*stalled, return_exceptions=True)
        self._stalled.clear()
