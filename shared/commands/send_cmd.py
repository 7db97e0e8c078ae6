"""`aelink send`: (being written)."""


def register(sub) -> None:
    pass
