"""Build script: everything is declared in setup.cfg except the optional C extension.

fastim.ws._speedups (masking in C, RFC 6455 §5.3) is compiled where a C compiler and the
Python headers are present; `optional=True` lets the install go on without it, and
fastim.ws then masks in pure Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("fastim.ws._speedups", ["fastim/ws/_speedups.c"], optional=True),
    ],
)
