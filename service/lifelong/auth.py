"""Roles and bearer tokens: who may call what. Knows nothing of gRPC (`lifelong.serving.auth` is
the interceptor that asks it).

A token table holds, per token, the SHA-256 of the token (never the token itself) and the roles
it grants. Its text form, one entry per line (or separated by `;`, for an environment variable),
`#` starting a comment:

    predict,learn  9f86d081884c7d659a2feaeb0c8ed9d3e7...   # roles, then sha256 hex of the token

`lifelong token --roles predict` makes a token and prints its line. A presented token is hashed
and compared against every stored hash with `hmac.compare_digest`, all of them every time, so
the time taken says nothing about how close a guess came.

>>> table = TokenTable.parse("predict " + token_hash("s3cret") + "\\nadmin " + token_hash("root"))
>>> auth = Authorizer(table)
>>> auth.check("/lifelong.v1.PredictionService/Predict", "s3cret") is None
True
>>> auth.check("/lifelong.v1.LearningService/Learn", "s3cret").message
"lifelong.v1.LearningService/Learn needs the role 'learn'; this token has: predict"
>>> auth.check("/lifelong.v1.LearningService/Learn", None).kind
'unauthenticated'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal

PREDICT, LEARN, ADMIN = "predict", "learn", "admin"
ROLES = (PREDICT, LEARN, ADMIN)

# The role each method needs. ModelService only reads (what the model is, how its plasticity
# is doing): callers allowed to predict may see it. A method missing here needs `admin`:
# a service added later is closed until someone decides who may call it.
METHOD_ROLES: dict[str, str] = {
    "/lifelong.v1.PredictionService/Predict": PREDICT,
    "/lifelong.v1.PredictionService/PredictBatch": PREDICT,
    "/lifelong.v1.PredictionService/PredictStream": PREDICT,
    "/lifelong.v1.ModelService/GetModelInfo": PREDICT,
    "/lifelong.v1.ModelService/GetPlasticityStats": PREDICT,
    "/lifelong.v1.LearningService/Learn": LEARN,
    "/lifelong.v1.LearningService/LearnStream": LEARN,
    "/lifelong.v1.AdminService/Checkpoint": ADMIN,
    "/lifelong.v1.AdminService/ListCheckpoints": ADMIN,
    "/lifelong.v1.AdminService/PauseLearning": ADMIN,
    "/lifelong.v1.AdminService/ResumeLearning": ADMIN,
    "/lifelong.v1.AdminService/RollBack": ADMIN,
    "/lifelong.v1.AdminService/ResetModel": ADMIN,
    "/lifelong.v1.AdminService/FreezeSubmodules": ADMIN,
    "/lifelong.v1.AdminService/UnfreezeSubmodules": ADMIN,
}
# Open to anyone who can connect: load balancers and probes check health without credentials,
# and reflection only describes the API (it can be switched off: `grpc_reflection`).
OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

_HEX64 = re.compile(r"[0-9a-f]{64}")


class TokenFileError(ValueError):
    """A token table that cannot be used; the message names the entry and says why."""


def token_hash(token: str) -> str:
    """The SHA-256 hex digest a token table stores for `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Entry:
    digest: bytes  # sha256 of the token
    roles: frozenset[str]


@dataclass(frozen=True)
class TokenTable:
    entries: tuple[Entry, ...]

    @classmethod
    def parse(cls, text: str, source: str = "auth tokens") -> TokenTable:
        """Read the text form; `source` names it in errors."""
        entries = []
        lines = (
            line.split("#", 1)[0].strip() for part in text.split(";") for line in part.splitlines()
        )
        for number, line in enumerate(filter(None, lines), start=1):
            fields = line.split()
            if len(fields) != 2:
                raise TokenFileError(
                    f"{source}: entry {number} should be 'ROLES SHA256HEX', got {len(fields)} "
                    "fields"
                )
            roles, digest = frozenset(fields[0].split(",")), fields[1].lower()
            unknown = sorted(roles - set(ROLES))
            if unknown:
                raise TokenFileError(
                    f"{source}: entry {number}: unknown role(s) {', '.join(unknown)}; "
                    f"roles are {', '.join(ROLES)}"
                )
            if not _HEX64.fullmatch(digest):
                raise TokenFileError(
                    f"{source}: entry {number}: {digest[:8]}... is not a SHA-256 hex digest "
                    "(64 hex digits; the file holds hashes, never tokens: `lifelong token`)"
                )
            entries.append(Entry(bytes.fromhex(digest), roles))
        if not entries:
            raise TokenFileError(f"{source}: no tokens; add lines 'ROLES SHA256HEX'")
        return cls(tuple(entries))

    def roles(self, token: str) -> frozenset[str] | None:
        """The roles of `token`, or None if it is not in the table (constant time per entry)."""
        digest = hashlib.sha256(token.encode()).digest()
        found: frozenset[str] | None = None
        for entry in self.entries:  # no early exit: every entry is compared, every time
            if hmac.compare_digest(entry.digest, digest):
                found = entry.roles if found is None else found | entry.roles
        return found


@dataclass(frozen=True)
class Refusal:
    """Why a call is refused: `unauthenticated` (no or unknown token) or `permission_denied`."""

    kind: Literal["unauthenticated", "permission_denied"]
    message: str


class Authorizer:
    """Decides calls: `check(method, token)` is None to let one through, else a `Refusal`.

    `table` None: no tokens, every call is let through (a server on loopback, or
    `auth_disabled`). `open_roles`: roles granted to calls without a token (`auth_open_predict`).
    """

    def __init__(self, table: TokenTable | None, open_roles: frozenset[str] = frozenset()) -> None:
        self.table = table
        self.open_roles = open_roles

    def check(self, method: str, token: str | None) -> Refusal | None:
        if self.table is None or method.startswith(OPEN_SERVICES):
            return None
        role = METHOD_ROLES.get(method, ADMIN)
        name = method.lstrip("/")
        if token is None:
            if role in self.open_roles:
                return None
            return Refusal(
                "unauthenticated",
                f"{name} needs a bearer token with the role '{role}': send the metadata "
                "'authorization: Bearer <token>' (lifelong CLI: --token or LIFELONG_TOKEN)",
            )
        roles = self.table.roles(token)
        if roles is None:
            return Refusal(
                "unauthenticated", f"{name}: the bearer token is not one this server knows"
            )
        if role not in roles and role not in self.open_roles:
            return Refusal(
                "permission_denied",
                f"{name} needs the role '{role}'; this token has: {', '.join(sorted(roles))}",
            )
        return None


def token_fingerprint(token: str) -> str:
    """How logs name a token's holder: the first 12 hex digits of its SHA-256 (the same as in
    the token table), never the token.

    >>> token_fingerprint("root")
    'sha256:4813494d137e'
    """
    return "sha256:" + token_hash(token)[:12]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `authorization` metadata value `Bearer <token>`, else None.

    >>> bearer_token("Bearer abc"), bearer_token("bearer abc"), bearer_token("Basic abc")
    ('abc', 'abc', None)
    """
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None
