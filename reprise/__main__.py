import sys

from reprise._cli import main

sys.exit(main())
