"""Secrets are masked wherever they could be printed."""

import pytest

from v10r.errors import EnvError
from v10r.redact import mask_text, mask_url
from v10r.spec.env import expand, references

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://app:s3cret@db:5432/app", "postgresql://app:****@db:5432/app"),
    ("postgresql://app@db/app", "postgresql://app@db/app"),
    ("redis://:pw@127.0.0.1:6379/0", "redis://:****@127.0.0.1:6379/0"),
    ("amqp://guest:guest@localhost:5672/", "amqp://guest:****@localhost:5672/"),
    ("host=db user=app password=s3cret dbname=app", "host=db user=app password=**** dbname=app"),
    ("postgresql://db/app?password=s3cret&sslmode=require", "postgresql://db/app?password=****&sslmode=require"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_text_masks_urls_and_known_secrets() -> None:
    text = "failed to reach postgresql://u:pw123@h/db with key sk-abcdef"
    assert mask_text(text, ("sk-abcdef",)) == "failed to reach postgresql://u:****@h/db with key ****"


def test_env_expansion_with_defaults_and_clear_errors() -> None:
    assert expand("${A}-${B:-dflt}", {"A": "x"}) == "x-dflt"
    assert references("${A} ${B:-x} ${C}") == ["A", "C"]
    with pytest.raises(EnvError) as info:
        expand("${MISSING_KEY}", {}, what="embedding.api_key", pipeline="docs")
    assert "MISSING_KEY" in str(info.value) and "docs" in str(info.value)
