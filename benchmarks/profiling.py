"""Optional profiles of a benchmark round, switched on by the environment: with
`BENCH_PROFILE=<dir>`, `profiled(name, groups)` records, over its block, each named process
group (or this process, SELF) with

- py-spy (`--native`: Python stacks with the native frames under them; Python threads only),
  into `<dir>/<name>-<group>.pyspy` (collapsed stacks, `py-spy record --format raw`), and
- perf, if installed (`perf record -a`, no call graph), every thread's native leaf functions
  machine-wide, into `<dir>/<name>.perf` (`perf report -i ... --pid <pid> --sort
  comm,dso,sym`; the pids are in the .threads files), and
- the CPU seconds of every thread of the group, by thread name (`/proc/<pid>/task/*/stat`):
  native threads py-spy does not see (granian's and librdkafka's) included, into
  `<dir>/<name>-<group>.threads`.

Without it, `profiled` does nothing. py-spy must be on PATH or beside the interpreter (the
`bench` extra installs it, as `scripts/setup` does); it runs in a process group of its own, so
its CPU is not counted in a measured group's, but it does slow what it samples: a profiled
round's rates do not count.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from benchmarks.common import SELF, TICKS, group_pids

PROFILE_ENV = "BENCH_PROFILE"
RATE = 200  # py-spy samples per second
PERF_RATE = 997  # perf: per second and CPU, machine-wide


def _py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit(
            f"{PROFILE_ENV} is set but py-spy is not installed (pip install py-spy, or the "
            "bench extra: pip install -e '.[bench]')"
        )
    return found


def _pids(pgid: int) -> list[int]:
    return [os.getpid()] if pgid == SELF else group_pids(pgid)


def thread_cpu(pids: list[int]) -> dict[str, float]:
    """CPU seconds so far per thread name (threads of one name summed) of `pids`."""
    out: dict[str, float] = {}
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with (
                    contextlib.suppress(FileNotFoundError),
                    open(f"/proc/{pid}/task/{tid}/stat", "rb") as stat,
                ):
                    text = stat.read().decode()
                name = f"{pid}:{text[text.index('(') + 1 : text.rindex(')')]}"
                fields = text[text.rindex(")") + 2 :].split()
                out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
    return out


@contextlib.contextmanager
def profiled(name: str, groups: Mapping[str, int]) -> Iterator[None]:
    directory = os.environ.get(PROFILE_ENV)
    if not directory:
        yield
        return
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    py_spy = _py_spy()
    pids = {group: _pids(pgid) for group, pgid in groups.items()}
    before = {group: thread_cpu(p) for group, p in pids.items()}
    # A group's leader and the processes it spawned (granian's serving ones); this process
    # alone (its subprocesses are the worker, profiled as a group of its own).
    spies = [
        _spy(py_spy, pgid, out / f"{name}-{group}") if pgid != SELF
        else _spy(py_spy, os.getpid(), out / f"{name}-{group}", subprocesses=False)
        for group, pgid in groups.items()
    ]  # fmt: skip
    perf = shutil.which("perf")
    if perf is not None:  # every thread's native frames (leaf symbols: no call graph)
        spies.append(_perf(perf, out / name))
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for spy in spies:
            spy.wait(timeout=60)
        for group, p in pids.items():
            after = thread_cpu(p)
            spent = {t: s - before[group].get(t, 0.0) for t, s in after.items()}
            lines = [f"{s:9.3f} {t}" for t, s in sorted(spent.items(), key=lambda i: -i[1])]
            (out / f"{name}-{group}.threads").write_text("\n".join(lines) + "\n")


def _spy(
    py_spy: str, pid: int, stem: Path, *, subprocesses: bool = True
) -> subprocess.Popen[bytes]:
    """py-spy recording `pid` (and its subprocesses) into `stem`.pyspy until SIGINT."""
    command = [py_spy, "record", "--native", "--rate", str(RATE), "--format", "raw"]
    command += ["--subprocesses"] if subprocesses else []
    command += ["--pid", str(pid), "-o", f"{stem}.pyspy"]
    with open(f"{stem}.pyspy.log", "wb") as log:
        return subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
        )


def _perf(perf: str, stem: Path) -> subprocess.Popen[bytes]:
    """perf sampling every thread of the machine into `stem`.perf until SIGINT (threads that
    start later too, as a delivery's librdkafka threads do)."""
    command = [perf, "record", "-a", "-F", str(PERF_RATE), "-o"]
    with open(f"{stem}.perf.log", "wb") as log:
        return subprocess.Popen(
            [*command, f"{stem}.perf"], stdout=log, stderr=log, start_new_session=True
        )
