"""`python -m data_prep`: see `data_prep.main`."""

from data_prep import main

raise SystemExit(main())
