"""Feed subscriptions and their poller: new entries of subscribed RSS/Atom feeds into the corpus.

subscriptions.py  the feeds subscribed and what each poll left: validators, outcome, failures,
                  the entries already taken (SQLite in the data folder)
polling.py        one poll of the feeds that are due: conditional GET, the pages of new entries
                  only, one rebuild; backoff with jitter; one poller per index folder (a lock)
"""
