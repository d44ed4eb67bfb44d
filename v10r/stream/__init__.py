"""Kafka workers on Faust: `faust -A v10r worker` runs the agents built in `v10r.faust_app`.

Each pipeline's task topic gets one agent: dedup against a table of the rows recent
batches fetched, `stream.take` batching (several batches in flight), then the one
worker runtime (`v10r.work.runtime`) that `v10r worker` uses too: applied column names,
breakers that hold a batch through an outage, the same settlement, counters and
backoff, and a dead-letter topic. Counters live in a Faust table, recovered from its
changelog after a restart.
"""
