"""``python -m core.hub [--check]``: write docs/zoo.md from the registry, or check that it is current."""
import sys

from .zoo import main

sys.exit(main())
