import sys

from demo.datagen.generate import main

sys.exit(main())
