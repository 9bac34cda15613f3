"""Byte-level mutations of a valid file, for the fuzz tests of the readers (Gaia
histories, models): hypothesis draws a few operations, ``mutate`` applies them."""
from typing import Iterable, Tuple

from hypothesis import strategies as st

# (position, bytes, operation): the position wraps around the data's length + 1.
mutation = st.tuples(st.integers(0, 2 ** 31), st.binary(min_size=1, max_size=8),
                     st.sampled_from(["set", "insert", "delete", "truncate"]))


def mutate(data: bytes, ops: Iterable[Tuple[int, bytes, str]]) -> bytes:
    """Overwrite, insert or delete ``len(chunk)`` bytes at a position, or cut the data
    there; the operations are applied in order."""
    for pos, chunk, op in ops:
        pos %= len(data) + 1
        if op == "set":
            data = data[:pos] + chunk + data[pos + len(chunk):]
        elif op == "insert":
            data = data[:pos] + chunk + data[pos:]
        elif op == "delete":
            data = data[:pos] + data[pos + len(chunk):]
        else:
            data = data[:pos]
    return data
