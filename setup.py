"""Native accelerators for ``tcpwise trace`` (everything else is in pyproject.toml).

Each extension is optional: without a C compiler the install still succeeds and tcpwise runs its pure-Python
path, which stays the reference the native code is tested against (docs/trace.md, "Native code").
"""

from setuptools import Extension, setup

_FLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]

setup(
    ext_modules=[
        Extension(
            "tcpwise.trace._rowjson",
            ["src/tcpwise/trace/_rowjson.c"],
            optional=True,
            extra_compile_args=_FLAGS,
        ),
        Extension(
            "tcpwise.trace._ctrack",
            ["src/tcpwise/trace/_ctrack.c"],
            optional=True,
            extra_compile_args=_FLAGS,
        ),
        Extension(
            "tcpwise.trace._cdecode",
            ["src/tcpwise/trace/_cdecode.c"],
            optional=True,
            extra_compile_args=_FLAGS,
        ),
    ]
)
