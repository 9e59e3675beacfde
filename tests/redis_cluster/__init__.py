"""The redis backend against a real Redis Cluster (``redis+cluster://``)."""
