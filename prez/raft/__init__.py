"""The Raft consensus core: a deterministic state machine with no I/O.

Must not import asyncio, socket, time, os, random (the module-level RNG),
prez.server, prez.storage or prez.kv. Randomness comes from a
`random.Random` instance handed in by the caller, time from `tick()` calls.
"""
