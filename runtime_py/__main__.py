import sys

from runtime_py.cli import main

sys.exit(main())
