"""``python -m edgeport ARGS`` is ``edgeport ARGS``."""

from edgeport.cli import main

main()
