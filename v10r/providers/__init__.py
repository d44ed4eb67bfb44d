"""Embedding providers: texts in, vectors out, in input order.

Build one with `v10r.providers.factory.create_provider(spec.embedding)`.
"""
