"""The copies of released plugins here are installed and tested by ``nox -s plugins_v1``.

Their own tests need them installed (from their wheels, one per environment: the
copy of lockkit-mkdir 0.1.0 has the name of today's plugin), so lockkit's own test
run does not collect them.
"""

from __future__ import annotations

collect_ignore = ["lockkit-mkdir-0.1.0"]
