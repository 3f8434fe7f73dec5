"""``python -m rtcloud`` runs the command line."""

from __future__ import annotations

import sys

from rtcloud.cli import main

sys.exit(main())
