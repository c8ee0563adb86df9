"""Compiled hot paths: pure computation over bytes, no I/O.

Each compiled module `X.pyx` has a `.pyi` stub and a plain-Python twin
`X_py.py` that behaves the same and serves as the test oracle and the
benchmark baseline. The twin is only ever selected explicitly, never as a
silent fallback when the extension is missing.

`select(name)` is the one place that chooses: every importer outside
`_core` takes a twinned module through it (tests that compare the two import
both by name). mypy checks against the compiled module's stub, so an
importer writes::

    if TYPE_CHECKING:
        from prez._core import wire
    else:
        wire = select("wire")
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

# The modules that have a plain-Python twin `<name>_py`.
TWINNED = frozenset({"batch", "entry", "log", "resp", "wire"})

_switch = os.environ.get("PREZ_PURE_CORE", "")
if _switch not in ("", "0", "1"):
    raise RuntimeError(f"PREZ_PURE_CORE must be 0 or 1, not {_switch!r}")
# PREZ_PURE_CORE=1: the twins (tests of the twin, or a machine without a
# compiler). Read once, at the first import of prez._core.
PURE_CORE = _switch == "1"


def select(name: str) -> ModuleType:
    """The compiled module `prez._core.<name>`, or its twin under PREZ_PURE_CORE=1.

    A missing extension is an ImportError, never a quiet switch to the twin.
    """
    if name not in TWINNED:
        raise ValueError(f"prez._core.{name} has no pure-Python twin")
    return importlib.import_module(
        f"{__name__}.{name}_py" if PURE_CORE else f"{__name__}.{name}"
    )
