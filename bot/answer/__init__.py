"""Answering: hybrid retrieval, verbatim quotes with confidence, batched question encoding."""
