"""The models: the question encoder (and the builds' passage encoder), and the reader."""
