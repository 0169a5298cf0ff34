from livegen.cli import main

raise SystemExit(main())
