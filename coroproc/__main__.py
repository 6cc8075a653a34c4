"""`python -m coroproc` is the `coroproc` daemon command."""
import sys

from coroproc.supervisor.cli import main

sys.exit(main())
