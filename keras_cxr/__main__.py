from keras_cxr.pipeline.cli import main

raise SystemExit(main())
