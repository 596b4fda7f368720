from gridfleet_cli.main import main

raise SystemExit(main())
