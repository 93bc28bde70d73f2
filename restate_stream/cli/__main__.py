import sys

from restate_stream.cli import main

sys.exit(main())
