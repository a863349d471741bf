"""``python -m edgeport.cli ARGS`` is ``edgeport ARGS``."""

from edgeport.cli import main

main()
