"""``python -m quantbench``: the ``quantbench`` command."""
import sys

from .cli.main import main

sys.exit(main())
