"""``python -m ttflow_async.cli``: the ``ttflow-async`` console script."""

from . import main

main()
