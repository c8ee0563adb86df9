"""Compiled hot paths: pure computation over bytes, no I/O.

Each compiled module `X.pyx` has a `.pyi` stub and a plain-Python twin
`X_py.py` that behaves the same and serves as the test oracle and the
benchmark baseline. The twin is only ever selected explicitly, never as a
silent fallback when the extension is missing.
"""
