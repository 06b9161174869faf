"""Byte-level mutations of a seed file, as plain data.

A mutation is data so that Hypothesis can draw and shrink it and the long run
can draw the same kinds from a seeded ``random.Random``. Positions are taken
modulo the current length, so any integer is a valid position.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from hypothesis import strategies as st

KINDS = ("set", "flip", "insert", "delete", "truncate", "duplicate", "number")
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)
"""Values that sit on the edges of the fields they land in (sizes, counts)."""
MAX_POSITION = 1 << 20


@dataclass(frozen=True)
class Mutation:
    kind: str
    at: int
    value: int = 0
    """A byte, a bit number, a length or an index in INTERESTING, by kind."""
    extra: bytes = b""


def apply(data: bytes, mutations: list[Mutation]) -> bytes:
    out = bytearray(data)
    for mutation in mutations:
        if out:
            _apply_one(out, mutation)
    return bytes(out)


def _apply_one(out: bytearray, mutation: Mutation) -> None:
    at = mutation.at % len(out)
    kind, value = mutation.kind, mutation.value
    if kind == "set":
        out[at] = value & 0xFF
    elif kind == "flip":
        out[at] ^= 1 << (value % 8)
    elif kind == "insert":
        out[at:at] = mutation.extra
    elif kind == "delete":
        del out[at : at + 1 + value % 64]
    elif kind == "truncate":
        del out[max(at, 1) :]
    elif kind == "duplicate":
        piece = out[at : at + 1 + value % 256]
        target = (at + value) % len(out)
        out[target:target] = piece
    else:
        number = INTERESTING[value % len(INTERESTING)]
        packed = struct.pack(_number_layout(value), number & _mask(value))
        out[at : at + len(packed)] = packed


def _number_layout(value: int) -> str:
    return (">H", "<H", ">I", "<I")[(value // len(INTERESTING)) % 4]


def _mask(value: int) -> int:
    return 0xFFFF if _number_layout(value).endswith("H") else 0xFFFFFFFF


def mutation_strategy() -> st.SearchStrategy[Mutation]:
    return st.builds(
        Mutation,
        kind=st.sampled_from(KINDS),
        at=st.integers(0, MAX_POSITION),
        value=st.integers(0, 255),
        extra=st.binary(min_size=1, max_size=32),
    )


def mutations_strategy() -> st.SearchStrategy[list[Mutation]]:
    return st.lists(mutation_strategy(), min_size=1, max_size=6)


def random_mutations(rng: random.Random) -> list[Mutation]:
    """What :func:`mutations_strategy` draws, from a plain seeded generator."""
    return [
        Mutation(
            kind=rng.choice(KINDS),
            at=rng.randrange(MAX_POSITION),
            value=rng.randrange(256),
            extra=rng.randbytes(rng.randint(1, 32)),
        )
        for _ in range(rng.randint(1, 6))
    ]
