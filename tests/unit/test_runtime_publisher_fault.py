"""The crash hook the crash-safety tests rely on: at its fault point it SIGKILLs the process."""

from __future__ import annotations

import os
import signal

import pytest

from restate_stream.runtime import publisher
from restate_stream.runtime.publisher import AFTER_ACK, FAULT_ENV


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(publisher.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    return sent


def test_the_fault_point_named_in_the_environment_sigkills_this_process(
    kills: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, AFTER_ACK)
    publisher._fault(AFTER_ACK)
    assert kills == [(os.getpid(), signal.SIGKILL)]


def test_other_or_no_fault_points_leave_the_process_alone(
    kills: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FAULT_ENV, raising=False)
    publisher._fault(AFTER_ACK)
    monkeypatch.setenv(FAULT_ENV, "before-publish")
    publisher._fault(AFTER_ACK)
    assert kills == []
