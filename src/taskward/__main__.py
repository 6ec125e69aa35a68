"""``python -m taskward``: the same as the ``taskward`` command."""

from taskward.cli import main

main()
