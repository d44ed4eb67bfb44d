"""`v10r demo`: the whole job on embedded defaults — no server, no Docker, no API key."""
