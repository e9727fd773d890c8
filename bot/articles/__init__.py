"""Articles: reading the corpus, new sources (files, pages, feeds), duplicates, writing and watching the corpus."""
