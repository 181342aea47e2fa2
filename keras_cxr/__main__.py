from keras_cxr.cli import main

raise SystemExit(main())
