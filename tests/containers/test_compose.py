"""deploy/docker-compose.yml run for real: Kafka, Restate, the worker and the apply job in
containers (local images, host networking on free loopback ports), and a food order placed from
the host through Restate's ingress is delivered end to end."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from examples.food_ordering import scenario
from examples.food_ordering.client import FoodClient
from examples.food_ordering.model import Cart, Item, Point
from examples.food_ordering.watch import finished
from restate_stream._util.ports import free_ports
from restate_stream.containers import ImageTags
from restate_stream.containers.compose import BASE, compose_argv, host_network_variant
from restate_stream.testing import wait_until

pytestmark = pytest.mark.containers


@dataclass
class Compose:
    argv: list[str]
    env: dict[str, str]
    ingress_url: str

    def run(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def logs(self) -> str:
        result = self.run("logs", "--no-color", "--tail", "40", timeout=60)
        return result.stdout + result.stderr


@pytest.fixture(scope="module")
def compose(
    docker_host: str, images: ImageTags, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Compose]:
    names = ["KAFKA", "KAFKA_CONTROLLER", "RESTATE_INGRESS", "RESTATE_ADMIN", "RESTATE_FABRIC"]
    names.append("WORKER")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = {
        **os.environ,
        "DOCKER_HOST": docker_host,
        **{f"RS_{name}_PORT": str(port) for name, port in ports.items()},
        "RS_KAFKA_IMAGE": images.kafka,
        "RS_RESTATE_IMAGE": images.restate,
        "RS_WORKER_IMAGE": images.worker,
    }
    variant = host_network_variant(
        BASE, tmp_path_factory.mktemp("compose") / "docker-compose.host.yml"
    )
    project = f"rs-test-{uuid.uuid4().hex[:8]}"
    stack = Compose(
        compose_argv(project, variant), env, f"http://127.0.0.1:{ports['RESTATE_INGRESS']}"
    )
    try:
        # --no-build: the images fixture built them; nothing may be pulled either.
        up = stack.run("up", "-d", "--no-build")
        assert up.returncode == 0, f"compose up failed:\n{up.stdout}{up.stderr}\n{stack.logs()}"
        yield stack
    finally:
        down = stack.run("down", "-v", "--timeout", "20")
        assert down.returncode == 0, f"compose down failed:\n{down.stdout}{down.stderr}"


def _state(compose: Compose, service: str) -> str:
    ps = compose.run("ps", "-a", "-q", service, timeout=60)
    (cid,) = ps.stdout.split()
    inspect = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", cid],
        env=compose.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return inspect.stdout.strip()


async def _job_succeeded(compose: Compose, job: str, timeout: float) -> None:
    """A one-shot compose job ran to its end and exited 0 (the logs on failure)."""

    async def state() -> str:
        return _state(compose, job)

    try:
        ended = await wait_until(state, lambda s: s.startswith("exited"), timeout=timeout)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{compose.logs()}") from None
    assert ended == "exited 0", f"the {job} job failed: {ended}\n{compose.logs()}"


async def test_compose_delivers_a_food_order(compose: Compose) -> None:
    # The apply job runs once every other service is healthy, and must succeed; then the
    # directory job publishes the restaurants the workflow looks up.
    await _job_succeeded(compose, "apply", timeout=240)
    await _job_succeeded(compose, "directory", timeout=120)
    for service in ("kafka", "restate", "worker"):
        assert _state(compose, service).startswith("running"), compose.logs()

    region = f"compose-{uuid.uuid4().hex[:6]}"
    price = dict(scenario.MENUS["sushi-kaito"])["miso soup"]
    cart = Cart(
        customer="ann",
        restaurant="sushi-kaito",
        region=region,
        address=Point(x=5.5, y=2.0),
        items=[Item(name="miso soup", quantity=1, price_cents=price)],
        total_cents=price,
        driver_timeout_s=60.0,
    )
    async with FoodClient(compose.ingress_url) as client:
        # The workflow reads the restaurant's record from the `restaurants` table, which
        # compose's directory job filled.
        assert await client.restaurant("sushi-kaito") is not None
        ((driver, position),) = scenario.drivers(1, prefix=f"{region}-driver")
        await client.start_driver(driver, region, position)
        try:
            order_id = await client.place_order(cart, region)

            async def status() -> str | None:
                return (await client.status(order_id))["status"]

            try:
                final = await wait_until(status, finished, timeout=120, interval=0.5)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{compose.logs()}") from None
            outcome = await client.outcome(order_id)
        finally:
            await client.stop_driver(driver)

    assert final == "delivered", f"{final}\n{compose.logs()}"
    assert outcome == {
        "order_id": order_id,
        "outcome": "delivered",
        "reason": None,
        "driver": driver,
    }
