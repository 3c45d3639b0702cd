from voiceconv.cli import main

raise SystemExit(main())
