"""Indexing: the corpus into a searchable index (chunks, vectors, keywords), its versions on disk, the live one."""
