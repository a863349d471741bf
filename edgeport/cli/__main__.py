"""``python -m edgeport.cli ARGS`` is ``edgeport ARGS``."""

from . import main

main()
