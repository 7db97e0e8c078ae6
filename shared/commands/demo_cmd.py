"""`aelink demo`: (being written)."""


def register(sub) -> None:
    pass
