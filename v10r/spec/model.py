"""The typed pipeline spec: the vocabulary every other layer speaks.

These pydantic models are the single source of truth for the spec language: the JSON
Schema in ``schemas/pipeline.schema.json`` is generated from them (and a test keeps the
committed file in sync), so editors, ``v10r validate`` and the code can never disagree.
All models are frozen and reject unknown keys, so a typo is an error, not a silent default.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from v10r.spec.identifiers import IdentifierError, check_identifier, derive_name, split_qualified

SPEC_VERSION = 1

# pgvector limits (0.8): a vector column holds up to 16,000 dims; HNSW indexes up to
# 2,000 dims for `vector` and 4,000 for `halfvec`.
MAX_VECTOR_DIMENSIONS = 16000
MAX_HNSW_DIMENSIONS = {"vector": 2000, "halfvec": 4000}

IDENTIFIER_PATTERN = r"^[^\x00]{1,63}$"
# An HTTP field name (RFC 9110 token), and a value without control characters: a line
# break in a value would start a header (or a request) of its own.
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$"
HEADER_VALUE_PATTERN = r"^[^\x00-\x08\x0a-\x1f\x7f]{0,8192}$"
PIPELINE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Identifier = Annotated[
    str,
    Field(
        pattern=IDENTIFIER_PATTERN,
        description="A PostgreSQL identifier (1–63 bytes, no NUL). It is always quoted, "
        "so mixed case, spaces and unicode are kept as written.",
    ),
]


ColumnList = Annotated[
    list[Identifier],
    BeforeValidator(_one_or_many),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": IDENTIFIER_PATTERN},
                              {"type": "array", "items": {"type": "string", "pattern": IDENTIFIER_PATTERN},
                               "minItems": 1}]}),
]


class Database(_Spec):
    """Where the source table lives; DSNs come from `${ENV}` so no secret is committed."""

    name: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9_.-]{1,63}$",
        description="Logical name of the database, carried in every task message.",
        examples=["main"],
    )
    dsn: str = Field(
        "${DATABASE_URL}",
        description="libpq connection URI used for writes (and reads unless `read_dsn` is "
        "set). Use `${VAR}` so the password stays out of git.",
        examples=["${DATABASE_URL}", "postgresql://v10r@db:5432/app"],
    )
    read_dsn: str | None = Field(
        None,
        description="Optional connection URI for reads (fetching rows, catch-up scans), "
        "e.g. a read-only user or a streaming replica. LISTEN and writes always use `dsn`; "
        "rows a lagging replica cannot settle are read again from `dsn`.",
        examples=["${DATABASE_READ_URL}"],
    )
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = (
        Field(None, description="TLS mode, as libpq's `sslmode`. Overrides the DSN's own.")
    )
    sslrootcert: str | None = Field(
        None, description="Path to the CA certificate for `verify-ca`/`verify-full`."
    )


FilterOp = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null"]


FILTER_INT_RANGE = (-(2**63), 2**63 - 1)


def _check_filter_scalar(item: Any) -> None:
    match item:
        case bool() | None:
            pass
        case float() if not math.isfinite(item):
            raise ValueError(f"{item} is not a number a row can be compared with; use a finite "
                             "number")
        case int() if not FILTER_INT_RANGE[0] <= item <= FILTER_INT_RANGE[1]:
            raise ValueError("the number is outside PostgreSQL's 64-bit integer range; write it "
                             "as a string to compare it as text")
        case str() if "\x00" in item:
            raise ValueError("the value contains a NUL character, which PostgreSQL text "
                             "cannot hold")


class Condition(_Spec):
    """One row-filter condition; conditions are ANDed. Structured, so no SQL text from a
    spec ever reaches the database."""

    column: Identifier = Field(description="Column of the source table.")
    op: FilterOp = Field("=", description="Comparison operator.")
    value: str | int | float | bool | list[str | int | float | bool] | None = Field(
        None,
        description="Literal to compare with: a list for `in`/`not in`, nothing for "
        "`is null`/`is not null`.",
    )

    @field_validator("value")
    @classmethod
    def _value_is_sql_safe(cls, value: Any) -> Any:
        """Refuse what validates here but cannot become a SQL literal later (in `plan`)."""
        for item in value if isinstance(value, list) else [value]:
            _check_filter_scalar(item)
        return value

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if self.op in ("is null", "is not null"):
            if self.value is not None:
                raise ValueError(f"`{self.op}` takes no value")
        elif self.op in ("in", "not in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"`{self.op}` needs a non-empty list as value")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"`{self.op}` needs a single value")
        return self


class Source(_Spec):
    """The table and the text to embed."""

    table: str = Field(
        description="Table name, optionally schema-qualified (`schema.table`); the schema "
        "defaults to `public`. Quote parts containing dots with double quotes.",
        examples=["public.documents", "shop.products"],
    )
    key: ColumnList = Field(
        default_factory=lambda: ["id"],
        min_length=1,
        max_length=8,
        description="Primary key column(s); several for a composite key.",
        examples=[["id"], ["tenant_id", "doc_id"]],
    )
    columns: ColumnList = Field(
        min_length=1,
        max_length=16,
        description="Text column(s) to embed. A change to any of them re-embeds the row.",
        examples=[["body"], ["title", "description"]],
    )
    template: str | None = Field(
        None,
        max_length=4000,
        description="How several columns become one text, with `{column}` placeholders. "
        "Default: the non-empty columns joined by a blank line.",
        examples=["{title}\n\n{description}"],
    )
    filter: list[Condition] = Field(
        default_factory=list,
        description="Only rows matching every condition are embedded.",
    )

    @field_validator("key", "columns")
    @classmethod
    def _valid_identifiers(cls, value: list[str]) -> list[str]:
        for name in value:
            check_identifier(name)
        if len(set(value)) != len(value):
            raise ValueError("lists a column twice")
        return value

    @field_validator("table")
    @classmethod
    def _valid_table(cls, value: str) -> str:
        try:
            split_qualified(value)
        except IdentifierError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _template_uses_columns(self) -> Source:
        if self.template is not None:
            import string

            try:
                fields = {f for _, f, _, _ in string.Formatter().parse(self.template) if f}
            except ValueError as exc:
                raise ValueError(f"template is malformed: {exc}") from None
            unknown = sorted(fields - set(self.columns))
            if unknown:
                raise ValueError(
                    f"template uses {', '.join(unknown)}, which are not in `columns`"
                )
        overlap = sorted(set(self.key) & set(self.columns))
        if overlap:
            raise ValueError(f"column {overlap[0]} is both a key and a text column")
        return self

    @property
    def schema_name(self) -> str:
        return split_qualified(self.table)[0]

    @property
    def table_name(self) -> str:
        return split_qualified(self.table)[1]


class Preprocess(_Spec):
    """Text clean-up before hashing and embedding; part of the fingerprint, so a change
    here marks every row stale."""

    strip_html: bool = Field(False, description="Remove HTML tags and unescape entities.")
    normalize_whitespace: bool = Field(
        True, description="Collapse runs of whitespace into one space and trim."
    )
    max_chars: int | None = Field(
        None, ge=1, le=10_000_000, description="Truncate the text to this many characters."
    )
    max_tokens: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Truncate to about this many tokens (estimated as 4 characters each; "
        "the provider still truncates at its model's exact limit).",
    )


ProviderKind = Literal["local", "openai", "infinity", "custom"]

PROVIDER_DEFAULTS: dict[str, dict[str, Any]] = {
    "local": {"model": "all-MiniLM-L6-v2", "dimensions": 384},
    "openai": {
        "model": "text-embedding-3-small",
        "dimensions": 1536,
        "base_url": "https://api.openai.com/v1",
        "api_key": "${OPENAI_API_KEY}",
    },
    "infinity": {"model": "BAAI/bge-m3", "dimensions": 1024, "base_url": "http://localhost:7997"},
    "custom": {},
}


class Embedding(_Spec):
    """Which model turns text into vectors, and how hard to push it."""

    provider: ProviderKind = Field(
        "local",
        description="`local` runs all-MiniLM-L6-v2 on the CPU with no server; `openai`, "
        "`infinity` and `custom` speak the OpenAI embeddings API over HTTP.",
    )
    model: str | None = Field(
        None, description="Model name sent to the provider. Default depends on the provider."
    )
    dimensions: int | None = Field(
        None,
        ge=1,
        le=MAX_VECTOR_DIMENSIONS,
        description="Vector size; must match what the model returns.",
    )
    base_url: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible API (`POST {base_url}/embeddings`). "
        "`HTTPS_PROXY`/`HTTP_PROXY` and `NO_PROXY` from the environment apply; `https` "
        "servers are verified against the system's CA store (`SSL_CERT_FILE` names another).",
        examples=["https://api.openai.com/v1", "http://infinity:7997"],
    )
    api_key: str | None = Field(
        None,
        description="API key, always as `${ENV_VAR}`; never printed.",
        examples=["${OPENAI_API_KEY}"],
    )
    headers: Annotated[
        dict[Annotated[str, Field(pattern=HEADER_NAME_PATTERN)],
             Annotated[str, Field(pattern=HEADER_VALUE_PATTERN)]],
        WithJsonSchema({"type": "object", "propertyNames": {"pattern": HEADER_NAME_PATTERN},
                        "additionalProperties": {"type": "string",
                                                 "pattern": HEADER_VALUE_PATTERN}}),
    ] = Field(default_factory=dict,
              description="Extra HTTP headers (values may use `${ENV}`). Names are HTTP "
              "tokens; values hold no line breaks or other control characters.")
    send_dimensions: bool = Field(
        False,
        description="Send `dimensions` in the request (OpenAI text-embedding-3 models "
        "can shorten their vectors).",
    )
    batch_size: int = Field(64, ge=1, le=2048, description="Texts per embedding request.")
    max_concurrency: int = Field(
        4, ge=1, le=64,
        description="HTTP providers: requests in flight at once per worker batch, each "
        "still within the rate limits; a slow provider's throughput grows with it.",
    )
    max_input_chars: int = Field(
        32_000, ge=1, description="Longest text sent to the provider, in characters."
    )
    timeout_s: float = Field(30.0, gt=0, le=600, allow_inf_nan=False,
                             description="Per-request timeout.")
    max_retries: int = Field(
        5, ge=0, le=20, description="Retries on 429, 5xx, timeouts and connection errors."
    )
    requests_per_minute: int | None = Field(
        None, ge=1, description="Client-side request rate limit."
    )
    tokens_per_minute: int | None = Field(
        None, ge=1, description="Client-side token rate limit (tokens estimated)."
    )
    price_per_million_tokens: float | None = Field(
        None, ge=0, allow_inf_nan=False,
        description="USD per million tokens, for the cost estimate in `plan`."
    )

    @model_validator(mode="after")
    def _apply_provider_defaults(self) -> Embedding:
        for key, value in PROVIDER_DEFAULTS[self.provider].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        if self.provider == "custom" and not self.base_url:
            raise ValueError("provider `custom` needs `base_url`")
        if self.dimensions is None:
            raise ValueError(f"provider `{self.provider}` needs `dimensions`")
        if self.model is None:
            raise ValueError(f"provider `{self.provider}` needs `model`")
        return self


class HnswIndex(_Spec):
    """An HNSW index for similarity search on the embedding column."""

    method: Literal["hnsw"] = "hnsw"
    metric: Literal["cosine", "l2", "ip"] = Field(
        "cosine", description="Distance the queries use: `<=>` cosine, `<->` L2, `<#>` inner product."
    )
    m: int = Field(16, ge=2, le=100, description="HNSW `m`.")
    ef_construction: int = Field(64, ge=4, le=1000, description="HNSW `ef_construction`.")


class Target(_Spec):
    """Where the vector and its metadata are written."""

    column: Identifier | None = Field(
        None,
        description="Embedding column. Default: `<first text column>_embedding`. Metadata "
        "columns are named after it: `_model`, `_hash`, `_at`, `_note`.",
        examples=["content_embedding"],
    )
    type: Literal["vector", "halfvec"] = Field(
        "vector", description="`halfvec` halves storage at a small precision cost."
    )
    index: HnswIndex | Literal["none"] = Field(
        default_factory=HnswIndex, description="`none`, or the HNSW index to build."
    )
    on_collision: Literal["fail", "rename"] = Field(
        "fail",
        description="If a wanted column name already exists and is not v10r's: `fail` "
        "with an error, or `rename` to a deterministic alternative (`<name>_v10r`).",
    )
    reembed: Literal["blue_green", "in_place"] = Field(
        "blue_green",
        description="When a change invalidates the vectors (model, dimensions, type, "
        "preprocessing, template): `blue_green` fills a new column beside the old one, which "
        "keeps serving until `v10r apply` swaps them; `in_place` re-embeds into the column "
        "itself (its vectors are replaced row by row, or dropped when the type changes).",
    )


class Queue(_Spec):
    """How tasks travel from the listener to the workers."""

    kind: Literal["memory", "redis", "kafka", "rabbitmq"] = Field(
        "memory",
        description="`memory` runs everything in one process (dev); `redis`, `kafka` "
        "and `rabbitmq` let workers scale out.",
    )
    url: str | None = Field(
        None,
        description="Broker URL; default from `${V10R_REDIS_URL}`, `${V10R_KAFKA_URL}` or "
        "`${V10R_RABBITMQ_URL}`.",
        examples=["${REDIS_URL}", "kafka://kafka:9092", "amqp://v10r:${RABBITMQ_PASSWORD}@rabbitmq:5672/"],
    )
    partitions: int = Field(4, ge=1, le=1024, description="Kafka partitions per pipeline topic.")
    dedup_window_ms: int = Field(
        100, ge=0, le=60_000, description="Bursts of changes to one row within this window "
        "become at most two tasks."
    )
    max_attempts: int = Field(
        5, ge=1, le=100, description="Deliveries of a task before it is dead-lettered."
    )


class Trigger(_Spec):
    """How the database tells v10r about changes."""

    bulk_threshold: int | None = Field(
        1000,
        ge=1,
        description="Statements touching more rows than this send one `scan` "
        "notification instead of one per row; the catch-up scan embeds those rows. "
        "`null` always notifies per row.",
    )


class Pipeline(_Spec):
    """One pipeline: a table's text columns kept embedded in a vector column."""

    version: Literal[1] = Field(1, description="Spec format version.")
    name: str = Field(
        pattern=PIPELINE_NAME_PATTERN,
        description="Unique pipeline name: lowercase letters, digits and `_`.",
        examples=["docs"],
    )
    description: str | None = Field(None, description="Free text for humans.")
    database: Database = Field(default_factory=Database)
    source: Source
    preprocess: Preprocess = Field(default_factory=Preprocess)
    embedding: Embedding = Field(default_factory=Embedding)
    target: Target = Field(default_factory=Target)
    queue: Queue = Field(default_factory=Queue)
    trigger: Trigger = Field(default_factory=Trigger)

    @property
    def embedding_column(self) -> str:
        return self.target.column or derive_name(self.source.columns[0], "_embedding")

    @property
    def dimensions(self) -> int:
        assert self.embedding.dimensions is not None  # set by provider defaults
        return self.embedding.dimensions

    @property
    def model(self) -> str:
        assert self.embedding.model is not None  # set by provider defaults
        return self.embedding.model


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one pipeline document."""
    schema = Pipeline.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://v10r.dev/schemas/pipeline.schema.json",
        "title": "v10r pipeline",
        **schema,
    }
