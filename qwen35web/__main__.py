import sys

from qwen35web.cli import main

sys.exit(main())
