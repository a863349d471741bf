"""``python -m edgeport ARGS`` is ``edgeport ARGS``."""

from .cli import main

main()
