"""Prez: a Raft-replicated, strongly consistent key-value store speaking RESP."""

__version__ = "0.1.0"
