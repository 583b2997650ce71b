"""``python -m ffenergy`` is the same program as the ``ffenergy`` console script."""

from ffenergy.cli import main

raise SystemExit(main())
