"""`python -m mlcli.server --entry-script score.py --port N [--host H] [--workers K]`."""

from mlcli.server.serve import main

raise SystemExit(main())
