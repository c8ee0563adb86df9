"""Test support shipped with Prez, never imported by production code.

`sim` is the deterministic Raft simulator and `invariants` the safety checks
it runs after every step; other modules here drive real processes.
"""
