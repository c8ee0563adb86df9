"""Build the compiled hot paths in prez/_core (one extension per .pyx).

PREZ_DEBUG=1 builds with line tracing, asserts and -O0 -g.
PREZ_ONLY=resp,wire limits the build to the named modules (handy while one
module is being edited and another is broken).
"""

import os
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("PREZ_DEBUG") == "1"
ONLY = {m for m in os.environ.get("PREZ_ONLY", "").split(",") if m}

sources = sorted(Path("prez/_core").glob("*.pyx"))
extensions = [
    Extension(
        f"prez._core.{src.stem}",
        [str(src)],
        extra_compile_args=(["-O0", "-g"] if DEBUG else ["-O2"]) + ["-Wall", "-Wno-unused-function"],
        define_macros=[("CYTHON_TRACE", "1")] if DEBUG else [],
    )
    for src in sources
    if not ONLY or src.stem in ONLY
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "embedsignature": True,
            "linetrace": DEBUG,
        },
        annotate=DEBUG,
    ),
)
