"""Plumbing both services share: settings, problem details, metrics, health, auth, limits, the app factory.

Nothing here imports either half (`shared.codec.encoder`, `shared.codec.decoder`): each service passes in its own
loader, so the encoder's process never holds decoder code or tensors, and the other way round. Keep
this `__init__` empty of imports, so that light users (the client) do not pull in FastAPI.
"""
