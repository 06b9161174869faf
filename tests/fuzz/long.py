"""The long fuzzing run: ``python -m tests.fuzz.long --count 10000``.

Each input is a seed file with one to six random mutations, rendered with the
default and the avatar presets in a child process. A child that dies (a
decoder crash) or overruns the time bound (a hang) is replaced, and the input
is saved for a regression test. The run prints a summary and exits 1 when any
input crashed, hung or raised anything but a known rejection.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from tests.fuzz.mutate import apply, random_mutations
from tests.fuzz.seeds import all_seeds

PRESET_NAMES = ("default", "avatar")


@dataclass
class Summary:
    inputs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    max_seconds: float = 0.0
    slowest: str = ""
    problems: list[str] = field(default_factory=list)

    def record(self, label: str, verdicts: list[tuple[str, float]]) -> None:
        self.inputs += 1
        for preset, (outcome, seconds) in zip(PRESET_NAMES, verdicts, strict=True):
            self.outcomes[f"{preset}: {outcome}"] += 1
            if seconds > self.max_seconds:
                self.max_seconds, self.slowest = seconds, f"{label} ({preset})"

    def print(self, elapsed: float) -> None:
        print(f"inputs: {self.inputs} in {elapsed:.0f} s, each with both presets")
        for name, count in sorted(self.outcomes.items()):
            print(f"  {name:34} {count:6}")
        print(f"slowest render: {self.max_seconds * 1000:.0f} ms, {self.slowest}")
        print(f"crashes, hangs and unexpected errors: {len(self.problems)}")
        for problem in self.problems:
            print("  " + problem)


def make_input(
    index: int, base_seed: int, seeds: dict[str, bytes]
) -> tuple[str, bytes]:
    rng = random.Random(base_seed * 1_000_003 + index)
    name = rng.choice(sorted(seeds))
    return f"#{index} {name}", apply(seeds[name], random_mutations(rng))


def _child(conn: Connection) -> None:
    from tests.fuzz.judge import PRESETS, judge

    while True:
        data = conn.recv_bytes()
        try:
            verdicts = []
            for name in PRESET_NAMES:
                verdict = judge(data, PRESETS[name])
                verdicts.append((verdict.outcome, verdict.seconds))
            conn.send(("ok", verdicts))
        except Exception:
            conn.send(("error", traceback.format_exc(limit=-3)))


class Child:
    def __init__(self, context: Any) -> None:
        self.conn, child_end = context.Pipe()
        self.process = context.Process(target=_child, args=(child_end,), daemon=True)
        self.process.start()
        child_end.close()
        self.job: tuple[str, bytes, float] | None = None

    def give(self, label: str, data: bytes) -> None:
        self.job = (label, data, time.monotonic())
        self.conn.send_bytes(data)

    def kill(self) -> None:
        self.process.kill()
        self.process.join()


def run(count: int, base_seed: int, workers: int, timeout: float, out: Path) -> Summary:
    seeds = all_seeds()
    context = multiprocessing.get_context("spawn")
    children = [Child(context) for _ in range(workers)]
    summary, index = Summary(), 0
    while index < count or any(child.job for child in children):
        for child in children:
            if child.job is None and index < count:
                child.give(*make_input(index, base_seed, seeds))
                index += 1
        busy = [child for child in children if child.job]
        wait([child.conn for child in busy], timeout=1.0)
        for child in busy:
            replaced = _collect(child, summary, timeout, out)
            if replaced:
                children[children.index(child)] = Child(context)
    for child in children:
        child.kill()
    return summary


def _collect(child: Child, summary: Summary, timeout: float, out: Path) -> bool:
    """Take a finished child's answer; ``True`` when the child had to go."""
    assert child.job is not None
    label, data, started = child.job
    if child.conn.poll():
        try:
            status, payload = child.conn.recv()
        except EOFError:
            return _problem(child, summary, out, f"{label}: the child died", data)
        child.job = None
        if status == "ok":
            summary.record(label, payload)
            return False
        summary.inputs += 1
        summary.problems.append(f"{label}: {payload.strip().splitlines()[-1]}")
        _save(out, label, data)
        return False
    if not child.process.is_alive():
        code = child.process.exitcode
        return _problem(child, summary, out, f"{label}: child exited {code}", data)
    if time.monotonic() - started > timeout:
        return _problem(child, summary, out, f"{label}: over {timeout:g} s", data)
    return False


def _problem(child: Child, summary: Summary, out: Path, text: str, data: bytes) -> bool:
    summary.inputs += 1
    summary.problems.append(text)
    _save(out, text.split(":")[0], data)
    child.kill()
    return True


def _save(out: Path, label: str, data: bytes) -> None:
    out.mkdir(parents=True, exist_ok=True)
    name = label.strip("#").replace(" ", "-").replace("/", "_").replace(":", "_")
    (out / f"{name}.bin").write_bytes(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1, help="base of every input")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=30.0, help="per input")
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"))
    args = parser.parse_args(argv)
    started = time.monotonic()
    summary = run(args.count, args.seed, args.workers, args.timeout, args.out)
    summary.print(time.monotonic() - started)
    return 1 if summary.problems else 0


if __name__ == "__main__":
    sys.exit(main())
