"""The Apache Beam engines: ``build_records --engine beam`` and ``predict --engine beam``.

`mclcr_keras.beam.options` turns the tools' ``-- <Beam pipeline options>`` into
``PipelineOptions`` (the local multi-process runner by default), `mclcr_keras.beam.fs` reads and
writes through Beam's filesystems (local paths, ``gs://``, ``s3://``), `mclcr_keras.beam.records`
is the conversion pipeline and `mclcr_keras.beam.scoring` the batch-scoring pipeline. Beam is
the optional ``beam`` extra: nothing outside this package imports it. See docs/beam.md.
"""
