import sys

from rankbook.book.cli import main

sys.exit(main())
