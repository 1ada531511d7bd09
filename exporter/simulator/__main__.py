"""``python -m exporter.simulator``: the same as the ``greenapi-simulator`` console script."""

from exporter.simulator.cli import main

raise SystemExit(main())
