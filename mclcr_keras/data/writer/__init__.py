"""Writing a records folder: the options of a conversion (`options`), its workers (`workers`), the
converter (`build`), the journaled shard streams (`shards`), the tables beside the shards
(`tables`) and the merge of partitions (`merge`)."""
