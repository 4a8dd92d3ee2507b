from mtlskit.cli.app import main

raise SystemExit(main())
