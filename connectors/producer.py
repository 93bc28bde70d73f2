"""Async Kafka producers behind one small protocol: confluent-kafka (default) or aiokafka.

`send()` returns only once the broker acknowledged the record, with its partition and offset,
so a caller inside `ctx.run` can journal where the record landed. `send_many()` hands a whole
list to the client at once (in list order, so records of a key keep their order) and returns
every record's outcome, acknowledgement or failure, once all are settled. A producer belongs
to the event loop it first sends on: create, use and close it on that one loop (create one
per loop otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, NoReturn, Protocol, Self

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException, Message, Producer

from connectors import errors as kafka_errors
from connectors.base_errors import KafkaClusterError
from connectors.logs import with_logger

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class Delivery:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None


@dataclass(frozen=True)
class ProducerRecord:
    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: Headers | None = None
    partition: int | None = None  # None: by key


class ProduceError(KafkaClusterError, RuntimeError):
    """Kafka did not acknowledge what was produced: one record (`topic`, `key`, librdkafka's
    `reason`, whether a retry may succeed), or some records of many (`failed`: each one's
    position and error, of `total`). `message` replaces the one-record message."""

    def __init__(
        self,
        topic: str,
        key: bytes | None,
        reason: str,
        *,
        retriable: bool = False,
        message: str | None = None,
        failed: Sequence[tuple[int, ProduceError]] = (),
        total: int = 1,
    ) -> None:
        super().__init__(
            message or f"producing to topic {topic!r} ({_describe_key(key)}) failed: {reason}"
        )
        self.topic = topic
        self.key = key
        self.reason = reason
        self.retriable = retriable
        self.failed = list(failed)
        self.total = total

    @classmethod
    def of_many(
        cls, failed: Sequence[tuple[int, ProduceError]], total: int, message: str
    ) -> ProduceError:
        """Some of `total` records failed: the first failure's topic, key and reason;
        retriable only if every failure is."""
        first = failed[0][1]
        retriable = all(error.retriable for _, error in failed)
        return cls(
            first.topic,
            first.key,
            first.reason,
            retriable=retriable,
            message=message,
            failed=failed,
            total=total,
        )


# The name earlier versions exported from `connectors` (kept for code that catches it).
ProduceFailed = ProduceError


def _describe_key(key: bytes | None) -> str:
    if key is None:
        return "no key"
    try:
        return f"key {key.decode()!r}"
    except UnicodeDecodeError:
        return f"key {key!r}"


class KafkaProducer(Protocol):
    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Delivery:
        """Return once the broker acknowledged the record; raise ProduceError otherwise."""
        ...

    async def send_many(self, records: Sequence[ProducerRecord]) -> list[Delivery | ProduceError]:
        """Send all concurrently, in list order; each record's ack or failure, in that order.

        A failed record does not stop the others: the caller sees which ones landed.
        """
        ...

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait for every record sent so far; TimeoutError if some are still unacknowledged."""
        ...

    async def close(self) -> None:
        """Flush, then release the client; a closed producer sends nothing more."""
        ...


def with_defaults(properties: Mapping[str, str]) -> dict[str, str]:
    """Durable defaults: acks from all replicas, idempotence (no duplicates or reordering
    on retries) unless acks was lowered, and a short linger so concurrent sends batch."""
    merged = {"acks": "all", "linger.ms": "5", **properties}
    if merged["acks"] in ("all", "-1"):
        merged.setdefault("enable.idempotence", "true")
    return merged


class _LoopBound(ABC):
    _loop: asyncio.AbstractEventLoop | None = None

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("this producer belongs to another event loop; create one per loop")
        return loop

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class ConfluentProducer(_LoopBound):
    """librdkafka does the batching and retries; a poll thread hands its delivery reports
    back to the loop, so sends never block the loop and may run concurrently."""

    def __init__(self, properties: Mapping[str, str]) -> None:
        # KafkaClientConfigError is a ValueError: callers' `except ValueError` still catch it.
        self._producer = kafka_errors.new_client(
            "Kafka producer", Producer, with_logger(with_defaults(properties))
        )
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None
        self._enqueue_lock = asyncio.Lock()
        self._closed = False

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Delivery:
        record = ProducerRecord(topic, value, key, headers, partition)
        (future,) = await self._enqueue([record])
        return await future

    async def send_many(self, records: Sequence[ProducerRecord]) -> list[Delivery | ProduceError]:
        futures = await self._enqueue(records)
        # Only ProduceError is ever set on these futures (see _settle and _enqueue).
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        return [o if isinstance(o, Delivery | ProduceError) else _unexpected(o) for o in outcomes]

    async def _enqueue(self, records: Sequence[ProducerRecord]) -> list[asyncio.Future[Delivery]]:
        """Hand `records` to librdkafka in order; one future per record, settled on its ack."""
        loop = self._bind_loop()
        if self._poller is None:
            self._poller = threading.Thread(
                target=self._poll, name="confluent-producer-poll", daemon=True
            )
            self._poller.start()
        futures: list[asyncio.Future[Delivery]] = []
        # Sends enter the local queue in call order: while one waits for queue space, later
        # ones wait behind it, so records of a key cannot overtake each other.
        async with self._enqueue_lock:
            for record in records:
                future: asyncio.Future[Delivery] = loop.create_future()
                futures.append(future)
                if self._closed:
                    future.set_exception(
                        ProduceError(record.topic, record.key, "the producer is closed")
                    )
                    continue
                on_delivery = functools.partial(
                    self._delivered, loop, future, record.topic, record.key
                )
                headers: list[tuple[str, str | bytes | None]] | None = (
                    list(record.headers) if record.headers else None
                )
                while True:
                    try:
                        self._producer.produce(
                            record.topic,
                            value=record.value,
                            key=record.key,
                            partition=-1 if record.partition is None else record.partition,
                            on_delivery=on_delivery,
                            headers=headers,
                        )
                        break
                    except BufferError:
                        await asyncio.sleep(0.01)  # local queue full: the poll thread drains it
                    except KafkaException as exc:
                        # Refused before it was queued (too large, unknown partition): final.
                        reason = kafka_errors.reason_text(exc)
                        future.set_exception(ProduceError(record.topic, record.key, reason))
                        break
        return futures

    def _poll(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.1)

    @staticmethod
    def _delivered(
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Delivery],
        topic: str,
        key: bytes | None,
        err: KafkaError | None,
        msg: Message,
    ) -> None:
        # Runs on the poll thread (or in flush's thread); only the loop may touch the future.
        outcome: Delivery | ProduceError
        if err is not None:
            outcome = ProduceError(topic, key, err.str(), retriable=err.retriable())
        else:
            kind, timestamp = msg.timestamp()
            partition, offset = msg.partition(), msg.offset()
            outcome = Delivery(
                topic,
                -1 if partition is None else partition,
                -1 if offset is None else offset,  # unknown with acks=0
                None if kind == TIMESTAMP_NOT_AVAILABLE else timestamp,
            )
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_settle, future, outcome)

    async def flush(self, timeout: float = 30.0) -> None:
        remaining = await asyncio.to_thread(self._producer.flush, timeout)
        if remaining:
            raise TimeoutError(f"{remaining} records still unacknowledged after {timeout:g}s")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.flush()
        finally:
            self._stopping.set()
            if self._poller is not None:
                await asyncio.to_thread(self._poller.join)
            # Fail whatever flush left behind instead of leaving its senders waiting forever.
            self._producer.purge()
            self._producer.poll(0)
            await asyncio.to_thread(self._producer.close)


def _settle(future: asyncio.Future[Delivery], outcome: Delivery | ProduceError) -> None:
    if future.done():  # the sender was cancelled
        return
    if isinstance(outcome, ProduceError):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _unexpected(outcome: BaseException) -> NoReturn:
    raise outcome


def _text(name: str, value: str) -> str:
    return value


def _integer(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"producer property {name!r} must be an integer, got {value!r}") from None


def _flag(name: str, value: str) -> bool:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"producer property {name!r} must be true or false, got {value!r}")


def _acks(name: str, value: str) -> int | str:
    if value in ("all", "-1"):
        return "all"
    if value in ("0", "1"):
        return int(value)
    raise ValueError(f"producer property {name!r} must be all, -1, 0 or 1, got {value!r}")


# librdkafka property -> (AIOKafkaProducer keyword, parser). aiokafka has one timeout for a
# record's whole trip, so both librdkafka timeouts map onto it (the smaller wins).
_AIOKAFKA_KEYWORDS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "bootstrap.servers": ("bootstrap_servers", _text),
    "client.id": ("client_id", _text),
    "acks": ("acks", _acks),
    "enable.idempotence": ("enable_idempotence", _flag),
    "linger.ms": ("linger_ms", _integer),
    "request.timeout.ms": ("request_timeout_ms", _integer),
    "message.timeout.ms": ("request_timeout_ms", _integer),
    "security.protocol": ("security_protocol", lambda _, v: v.upper()),
    "sasl.mechanism": ("sasl_mechanism", _text),
    "sasl.username": ("sasl_plain_username", _text),
    "sasl.password": ("sasl_plain_password", _text),
    "ssl.ca.location": ("ssl_cafile", _text),
}


def aiokafka_keywords(properties: Mapping[str, str]) -> dict[str, Any]:
    """AIOKafkaProducer keyword arguments for librdkafka-style `properties` (with defaults)."""
    keywords: dict[str, Any] = {}
    for name, value in with_defaults(properties).items():
        if name not in _AIOKAFKA_KEYWORDS:
            supported = ", ".join(sorted(_AIOKAFKA_KEYWORDS))
            raise ValueError(
                f"producer property {name!r} is not supported by the aiokafka client "
                f"(supported: {supported}); use the confluent client for other properties"
            )
        keyword, parse = _AIOKAFKA_KEYWORDS[name]
        parsed = parse(name, value)
        if keyword in keywords:
            parsed = min(keywords[keyword], parsed)
        keywords[keyword] = parsed
    return keywords


class AioKafkaProducer(_LoopBound):
    """Pure-Python alternative; the client starts on the first send, inside the loop."""

    def __init__(self, properties: Mapping[str, str]) -> None:
        try:
            import aiokafka
            import aiokafka.errors
            import aiokafka.helpers
        except ImportError as exc:
            raise ImportError(
                "the aiokafka client needs aiokafka: pip install 'restate-stream[aiokafka]'"
            ) from exc
        self._aiokafka = aiokafka
        self._keywords = aiokafka_keywords(properties)  # bad properties fail here, not later
        self._client: Any = None
        self._start_lock = asyncio.Lock()
        self._closed = False

    async def _started(self, topic: str, key: bytes | None) -> Any:
        if self._closed:
            raise ProduceError(topic, key, "the producer is closed")
        self._bind_loop()
        if self._client is not None:
            return self._client  # started: no lock on every send
        async with self._start_lock:
            if self._client is None:
                keywords = dict(self._keywords)
                cafile = keywords.pop("ssl_cafile", None)
                if keywords.get("security_protocol", "PLAINTEXT").endswith("SSL"):
                    keywords["ssl_context"] = self._aiokafka.helpers.create_ssl_context(
                        cafile=cafile
                    )
                client = self._aiokafka.AIOKafkaProducer(**keywords)
                try:
                    await client.start()
                except BaseException:
                    await client.stop()  # a failed start leaves connections behind
                    raise
                self._client = client
        return self._client

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Delivery:
        if value is None and key is None:
            raise ValueError("aiokafka cannot send a record with neither key nor value")
        try:
            client = await self._started(topic, key)
            sent = await client.send_and_wait(
                topic, value, key=key, partition=partition, headers=list(headers or ())
            )
        except self._aiokafka.errors.KafkaError as exc:
            reason = str(exc) or type(exc).__name__  # aiokafka prefixes its class name
            raise ProduceError(topic, key, reason, retriable=exc.retriable) from exc
        return _aiokafka_delivery(sent)

    async def send_many(self, records: Sequence[ProducerRecord]) -> list[Delivery | ProduceError]:
        for record in records:
            if record.value is None and record.key is None:
                raise ValueError("aiokafka cannot send a record with neither key nor value")
        errors = self._aiokafka.errors
        # send() appends to the client's batches in call order and returns the ack's future,
        # so awaiting each send() keeps list order while the acks are awaited together.
        if not records:
            return []
        try:
            client = await self._started(records[0].topic, records[0].key)
        except errors.KafkaError as exc:
            return [self._failed(record, exc) for record in records]  # no client: none sent
        except ProduceError as exc:  # closed
            return [ProduceError(r.topic, r.key, exc.reason) for r in records]
        pending: list[asyncio.Future[Any] | ProduceError] = []
        for record in records:
            try:
                pending.append(
                    await client.send(
                        record.topic,
                        record.value,
                        key=record.key,
                        partition=record.partition,
                        headers=list(record.headers or ()),
                    )
                )
            except errors.KafkaError as exc:
                pending.append(self._failed(record, exc))
        acks = await asyncio.gather(
            *(p for p in pending if not isinstance(p, ProduceError)), return_exceptions=True
        )
        outcomes: list[Delivery | ProduceError] = []
        settled = iter(acks)
        for record, p in zip(records, pending, strict=True):
            if isinstance(p, ProduceError):
                outcomes.append(p)
                continue
            ack = next(settled)
            if isinstance(ack, errors.KafkaError):
                outcomes.append(self._failed(record, ack))
            elif isinstance(ack, BaseException):
                raise ack
            else:
                outcomes.append(_aiokafka_delivery(ack))
        return outcomes

    @staticmethod
    def _failed(record: ProducerRecord, exc: Any) -> ProduceError:
        reason = str(exc) or type(exc).__name__
        return ProduceError(record.topic, record.key, reason, retriable=bool(exc.retriable))

    async def flush(self, timeout: float = 30.0) -> None:
        if self._client is None:
            return
        try:
            await asyncio.wait_for(self._client.flush(), timeout)
        except TimeoutError:
            raise TimeoutError(f"records still unacknowledged after {timeout:g}s") from None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._client is not None:
            try:
                await self.flush()
            finally:
                await self._client.stop()


def _aiokafka_delivery(sent: Any) -> Delivery:
    timestamp = sent.timestamp if sent.timestamp is not None and sent.timestamp >= 0 else None
    return Delivery(sent.topic, sent.partition, sent.offset, timestamp)


def create_producer(
    properties: Mapping[str, str], client: Literal["confluent", "aiokafka"] = "confluent"
) -> KafkaProducer:
    """A producer for librdkafka-style `properties` (the ones Restate is given for the cluster)."""
    if client == "confluent":
        return ConfluentProducer(properties)
    if client == "aiokafka":
        return AioKafkaProducer(properties)
    raise ValueError(f"unknown Kafka client {client!r}: expected 'confluent' or 'aiokafka'")
