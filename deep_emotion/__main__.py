from deep_emotion.cli import main

raise SystemExit(main())
