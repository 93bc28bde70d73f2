"""Local engines: installer, Kafka broker and Restate server processes, the combined stack."""

from restate_stream._util.ports import PortInUseError
from restate_stream.stack.install import StackInstallError, install_all
from restate_stream.stack.local import LocalStack, StackError, StackPorts, default_home

__all__ = [
    "LocalStack",
    "PortInUseError",
    "StackError",
    "StackInstallError",
    "StackPorts",
    "default_home",
    "install_all",
]
