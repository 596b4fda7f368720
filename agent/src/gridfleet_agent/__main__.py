from gridfleet_agent.cli import main

raise SystemExit(main())
