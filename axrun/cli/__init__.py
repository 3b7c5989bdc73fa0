"""The ``axrun`` command line: a thin layer over the library."""

from axrun.cli.app import app, main

__all__ = ["app", "main"]
