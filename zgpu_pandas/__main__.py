"""``python -m zgpu_pandas`` is the same as the ``zgpu-pandas`` command."""

from .cli import main

raise SystemExit(main())
