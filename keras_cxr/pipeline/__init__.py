"""The pipeline: what runs the library on disk, resumably, across processes and machines.

Run folders and locks (`run_folder`, `locks`), one GAN run from manifest to exported generator
(`gan_run`, quality `tracking` with cached feature `extractor`s), the (method, seed) `matrix`
and its `cells` (`train_cell`), the `summary` and `report` written from them, `provenance`, and
the command line (`cli`). Library modules (`keras_cxr.data`, `gan`, `resample`, `classify`,
`evaluate`, `explain`, `kernels`, `metrics`, `config`) never import this package.
"""
