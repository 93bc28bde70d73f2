"""Waiting until consumer groups have committed to the end of their topics, while the cluster
may still be moving leaderships back to a restarted broker: a lag query can then fail for a
moment (UNKNOWN_LEADER_EPOCH, NOT_LEADER_OR_FOLLOWER) and is asked again."""

from __future__ import annotations

import asyncio

from connectors import TopicAdmin
from connectors.errors import KafkaAdminError
from restate_stream._util.poll import apoll


async def wait_committed(bootstrap: str, topics: dict[str, str], timeout: float = 120) -> None:
    """Until each group of `topics` (group -> topic) has no lag on its topic."""
    admin = TopicAdmin(bootstrap)

    async def lags() -> dict[str, list[int]]:
        """Each group's lag, by partition."""
        found = {}
        for group, topic in topics.items():
            partitions = await asyncio.to_thread(admin.group_lag, group, topic)
            found[group] = [p.lag for p in sorted(partitions, key=lambda p: p.partition)]
        return found

    await apoll(
        lags,
        what=f"groups {sorted(topics)} committed to the end",
        timeout=timeout,
        until=lambda found: not any(any(ls) for ls in found.values()),
        interval=0.25,
        retry_on=(KafkaAdminError,),
        describe=lambda found: f"lag by partition {found}",
    )
