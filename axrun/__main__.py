"""``python -m axrun``."""

from axrun.cli import main

main()
