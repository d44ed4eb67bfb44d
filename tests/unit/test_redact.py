"""Secrets are masked wherever they could be printed."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from v10r.errors import EnvError, V10rError
from v10r.redact import header_secret, mask_text, mask_url, secret_spans
from v10r.spec.env import expand, references

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://app:s3cret@db:5432/app", "postgresql://app:****@db:5432/app"),
    ("postgresql://app@db/app", "postgresql://app@db/app"),
    ("redis://:pw@127.0.0.1:6379/0", "redis://:****@127.0.0.1:6379/0"),
    ("amqp://guest:guest@localhost:5672/", "amqp://guest:****@localhost:5672/"),
    ("host=db user=app password=s3cret dbname=app", "host=db user=app password=**** dbname=app"),
    ("postgresql://db/app?password=s3cret&sslmode=require", "postgresql://db/app?password=****&sslmode=require"),
    ("user:pass@host/db", "user:****@host/db"),
    ("postgresql://u:literalpass@${HOST}/db", "postgresql://u:****@${HOST}/db"),
    ("postgresql://${U:-app}:${PW}@${HOST:-db:5}/db", "postgresql://${U:-app}:${PW}@${HOST:-db:5}/db"),
    ("postgresql://u:${PW:-fallback}@h/db", "postgresql://u:****@h/db"),
    ("postgresql://u:pw@db:notaport/app", "postgresql://u:****@db:notaport/app"),
    ("postgresql://u:p@ss@h/db", "postgresql://u:****@h/db"),
    ("postgresql://u:pw@h1:5432,h2:5432/db", "postgresql://u:****@h1:5432,h2:5432/db"),
    ("postgresql://u:pw@[::1]:x/db", "postgresql://u:****@[::1]:x/db"),
    ("host=x password='a b c' sslpassword=zz", "host=x password=**** sslpassword=****"),
    ("https://api.example.com/v1?api_key=abc123&x=1", "https://api.example.com/v1?api_key=****&x=1"),
    ("postgresql://db/app?sslpassword=kp", "postgresql://db/app?sslpassword=****"),
    ("${DATABASE_URL}", "${DATABASE_URL}"),
    ("postgresql://[::1]:5432/db", "postgresql://[::1]:5432/db"),
    ("//u:pw@h/db", "//u:****@h/db"),
    ("postgresql:///db?user=u&password=pw", "postgresql:///db?user=u&password=****"),
    ("  host=x   password = pw", "  host=x   password = ****"),
    ("", ""),
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


# ---- every credential form, and masking never raises --------------------------------




@pytest.mark.parametrize(("text", "secret"), [
    ("cannot connect to user:hunter2@127.0.0.1:1/db: invalid DSN", "hunter2"),
    ("401 from provider: Authorization: Bearer sk-abcdefghijklmnopqrst", "sk-abcdefghijklmnopqrst"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ('headers {"api-key": "supersecret1"}', "supersecret1"),
    ("request to https://x/v1?key=AIzaSyQ123&alt=json failed", "AIzaSyQ123"),
    ("conninfo host=db password=kvpass dbname=app", "kvpass"),
    ("key sk-proj-0123456789abcdefghij leaked", "sk-proj-0123456789abcdefghij"),
    ("amqp://guest:guestpw@mq:5672/ refused", "guestpw"),
])
def test_mask_text_every_form(text: str, secret: str) -> None:
    masked = mask_text(text)
    assert secret not in masked and "****" in masked


def test_mask_text_keeps_ordinary_text() -> None:
    text = "token limit reached at 12:30; user@example.com; tokens per minute; ${PW}"
    assert mask_text(text) == text


@given(st.text(max_size=80))
def test_masking_never_raises(text: str) -> None:
    assert isinstance(mask_url(text), str) and isinstance(mask_text(text), str)
    assert isinstance(secret_spans(text), list)


@given(st.text(alphabet="abc:@/?&=%$}{[]# ", max_size=40))
def test_masking_never_raises_on_url_punctuation(text: str) -> None:
    masked = mask_url(text)
    assert all(text[start:end] != "" or start == end for start, end in secret_spans(text))
    assert isinstance(masked, str)


def test_errors_mask_themselves() -> None:
    error = V10rError("cannot reach user:pw1234@db/app", hint="check password=pw1234")
    assert "pw1234" not in str(error)


@pytest.mark.parametrize(("name", "value", "secret"), [
    ("Authorization", "Bearer sk-abc", "sk-abc"),
    ("authorization", "Basic  dXNlcg==", "dXNlcg=="),
    ("api-key", "k123", "k123"),
    ("X-Api-Token", "${T}", "${T}"),
    ("X-Other", "Bearer lit", "lit"),
    ("X-Org", "sk-0123456789abcdefghijkl", "sk-0123456789abcdefghijkl"),
    ("OpenAI-Organization", "org-123", None),
    ("Content-Type", "application/json", None),
])
def test_header_secret(name: str, value: str, secret: str | None) -> None:
    assert header_secret(name, value) == secret


def test_an_empty_variable_counts_as_unset() -> None:
    with pytest.raises(EnvError, match=r"DATABASE_URL is empty \(needed by `database.dsn`\)"):
        expand("${DATABASE_URL}", {"DATABASE_URL": ""}, what="database.dsn")
    with pytest.raises(EnvError, match="is empty"):
        expand("postgresql://u:${PW}@h/db", {"PW": "  "})
    assert expand("${A:-dflt}", {"A": ""}) == "dflt"
    assert references("${A}") == ["A"]


HOSTILE_TEXT = ["password=" * 20_000, "a." * 100_000, "a:" * 100_000 + "@", "x=y " * 50_000,
                "password='" * 20_000, "api-key " * 30_000, "sk-" * 60_000, "${" * 50_000,
                "${a}" * 30_000 + "@", "u:" * 50_000 + "p@h"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("text", HOSTILE_TEXT, ids=lambda t: repr(t[:12]))
def test_masking_stays_linear_on_hostile_text(text: str) -> None:
    """An error text is untrusted: a regex that rescans on failure hung for minutes here."""
    assert isinstance(mask_text(text), str) and isinstance(mask_url(text), str)


def test_log_lines_are_masked_and_printable() -> None:
    import logging

    from v10r.redact import MaskingFormatter

    record = logging.LogRecord("v10r", logging.WARNING, __file__, 1,
                               "cannot reach %s: %s", ("amqp://u:mqpass1@mq/", "\x1b[2Jboom"), None)
    line = MaskingFormatter("%(levelname)s %(message)s").format(record)
    assert line == "WARNING cannot reach amqp://u:****@mq/: \\x1b[2Jboom"


@pytest.mark.parametrize(("text", "shown"), [
    ("x[/]y", "x\\[/]y"),
    ("[bold]b[/bold]", "\\[bold]b\\[/bold]"),
    ("\x1b[31mred\r\x9b\x07\u202e", "\\x1b[31mred\\x0d\\x9b\\x07\\u202e"),
    ("line\nnext", "line\nnext"),
])
def test_safe_escapes_markup_and_control_characters(text: str, shown: str) -> None:
    """Rich prints `safe(text)` exactly as `printable(text)`: no markup, no control codes."""
    from rich.console import Console

    from v10r.redact import printable, safe

    assert safe(text) == shown
    console = Console(record=True, width=200, color_system=None)
    console.print(safe(text))
    assert console.export_text() == printable(text) + "\n"


@given(scheme=st.sampled_from(["postgresql://", "postgres://", "redis://", "amqp://", "", "//"]),
       user=st.sampled_from(["u", "${DB_USER}", "", "${U:-app}"]),
       password=st.text("abcXYZ0129!$%^*()-_.~+=,;", min_size=6, max_size=20),
       host=st.sampled_from(["h", "${DB_HOST}", "${H:-db:5432}", "[::1]:5432", "h:notaport",
                             "h1:5432,h2:5432"]),
       tail=st.sampled_from(["", "/db", "/db?sslmode=require", "/${DB_NAME}?application_name=x"]))
def test_a_literal_password_in_any_url_form_is_masked_and_refused(
        scheme: str, user: str, password: str, host: str, tail: str) -> None:
    from v10r.spec.model import Pipeline
    from v10r.spec.secrets import literal_secrets

    if password.startswith("${") or "$" in password and "{" in password:
        return
    dsn = f"{scheme}{user}:{password}@{host}{tail}"
    assert password not in mask_url(dsn) and password not in mask_text(dsn)
    assert password not in str(V10rError(f"cannot connect to {dsn}"))
    p = Pipeline.model_validate({"name": "p", "source": {"table": "t", "columns": ["a"]},
                                 "database": {"dsn": dsn}, "queue": {"url": dsn}})
    assert {s.path for s in literal_secrets(p)} == {("database", "dsn"), ("queue", "url")}
