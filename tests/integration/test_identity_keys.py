"""Request signatures: a worker with identity keys serves a Restate server that signs its
requests with the matching private key, and refuses one that does not sign."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from restate_stream._util.ports import free_ports
from restate_stream.control.admin import AdminApiError, AdminClient
from restate_stream.stack import LocalStack
from restate_stream.stack.install import restate_install
from restate_stream.stack.restate import RestatePorts, RestateServer
from restate_stream.testing import CLI, bindings_yaml, wait_until
from tests.identity import ed25519_keys

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]


async def test_worker_verifies_request_signatures(
    restate_stream_stack: LocalStack, restate_admin: AdminClient, tmp_path: Path
) -> None:
    pem, public_key = ed25519_keys(tmp_path)
    signing = RestateServer(
        restate_install(),
        tmp_path / "signing-restate",
        RestatePorts(*free_ports(3)),
        extra_env={"RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(pem)},
    )
    signing.start()
    port = free_ports(1)[0]
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings_yaml(
            admin_url=signing.admin_url,
            clusters={"local": restate_stream_stack.bootstrap_servers},
            worker={
                "app": "examples.quickstart.app:app",
                "uri": f"http://127.0.0.1:{port}",
                "identity_keys": [public_key],
            },
            bindings=[
                {"name": "payments", "topic": "payments", "handler": "Account/apply_payment"}
            ],
        )
    )
    worker = subprocess.Popen(
        [*CLI, "worker", "-f", str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        async with AdminClient(signing.admin_url) as admin:

            async def deployments() -> list[str]:
                return [d.uri or "" for d in await admin.list_deployments()]

            registered = await wait_until(deployments, bool, timeout=60)
            assert registered[0].rstrip("/") == f"http://127.0.0.1:{port}"

        # Through the signing Restate, a handler runs and its state is there to read.
        async with httpx.AsyncClient(base_url=signing.ingress_url, timeout=30) as ingress:
            paid = await ingress.post(
                "/Account/acct-signed/apply_payment", json={"amount_cents": 7}
            )
            assert paid.status_code == 200, paid.text
            balance = await ingress.post("/Account/acct-signed/balance")
            assert balance.status_code == 200 and balance.json() == 7, balance.text

        # An unsigned request, straight to the worker, is refused as unauthenticated.
        async with httpx.AsyncClient(http2=False, timeout=30) as direct:
            unsigned = await direct.get(f"http://127.0.0.1:{port}/discover")
        assert unsigned.status_code == 401, (unsigned.status_code, unsigned.text)
        # And so is the Restate server that does not sign: it cannot even discover the worker.
        with pytest.raises(AdminApiError) as refused:
            await restate_admin.register_deployment(f"http://127.0.0.1:{port}")
        assert refused.value.status >= 400 and "401" in str(refused.value), refused.value
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
        signing.stop()
    assert "registered" in output, output
