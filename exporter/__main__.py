"""``python -m exporter``: the same as the ``greenapi-exporter`` console script."""

from exporter.cli import main

raise SystemExit(main())
