"""``python -m pakat_logging``: the same as the ``pakat-logging`` command."""

from ._cli import main

raise SystemExit(main())
