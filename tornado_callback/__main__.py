from tornado_callback.cli import main

raise SystemExit(main())
