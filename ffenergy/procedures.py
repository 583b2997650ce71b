"""The inference procedures a run compares, by name."""

PROCEDURES = ("mp", "mp-pruned", "op")


def network_kind(procedure: str) -> str:
    """The network a procedure runs ("mp" or "op"); ``mp-pruned`` is MP with label pruning, and
    its reductions are reported against the full unpruned MP network."""
    if procedure not in PROCEDURES:
        raise ValueError(f"unknown procedure {procedure!r}: use one of {', '.join(PROCEDURES)}")
    return "op" if procedure == "op" else "mp"
