"""Kafka workers on Faust: `faust -A v10r worker` runs the agents built in `v10r.faust_app`.

Each pipeline's task topic gets one agent: dedup against a table of when each row was
last fetched, `stream.take` batching, the shared processing core, retries with backoff
and a dead-letter topic. Progress counters live in a Faust table, recovered from its
changelog after a restart.
"""
