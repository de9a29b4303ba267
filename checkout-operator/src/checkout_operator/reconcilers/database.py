"""PostgreSQL: one schema and one login role per service, isolated from each other, drift repaired.

Each pass connects as the admin from the platform's admin Secret, and for every service, in one
transaction under an advisory lock: observes the role and the schema, plans the statements that take
them to the desired state (a pure function, :func:`plan_service`), and runs them. What a pass does is
therefore decided from what PostgreSQL says now, never from memory — a schema dropped by hand comes
back on the next pass, and so does a changed password.

The grant model:

- The role is ``LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS``, never
  expires, and has ``search_path`` set to its schema. Its connection limit is not managed (a DBA may set
  one; the operator cannot know replicas times pool size).
- It owns its schema, so it may create and use anything there (migrations run as the role).
- It gets ``CONNECT, TEMPORARY`` on the database explicitly (so hardening ``PUBLIC`` does not lock it
  out) and never ``CREATE`` on it (it could make schemas of its own); an explicit ``CREATE`` is revoked.
  An admin that may not grant on the database (not its owner, no grant option) leaves this to
  ``PUBLIC``'s default ``CONNECT, TEMPORARY``.
- Explicit grants to it on any other schema are revoked: a service sees only its own schema. Grants
  others receive on its schema are left alone (a DBA may give a reporting role read access).
- ``schema public``: PostgreSQL 15+ gives ``PUBLIC`` only ``USAGE`` there, so the role cannot create in
  it. Where ``PUBLIC`` may still ``CREATE`` (the pre-15 default, a database restored from an older
  server, or granted by hand) every role can, service roles too: a channel between services outside
  their schemas (and the search-path trap of CVE-2018-1058). When the admin may revoke it (a superuser,
  or a member of the schema's owner) every pass runs ``REVOKE CREATE ON SCHEMA public FROM PUBLIC`` —
  PostgreSQL 15's own default — and says so in an Event; otherwise the ready message says so instead.
- ``ALTER DEFAULT PRIVILEGES FOR ROLE <admin> IN SCHEMA <schema> GRANT ALL ON TABLES, SEQUENCES,
  FUNCTIONS TO <role>``: what the admin creates in a service's schema (a hand-run fix) stays usable by
  the service.

Passwords never travel in clear text: the role's password is sent as a SCRAM-SHA-256 verifier computed
here (as psql's password command does), so it cannot end up in the server log, ``pg_stat_activity`` or
an error message. When the admin is a superuser the stored verifier is checked against the Secret's
password and only a mismatch is rewritten (and reported); otherwise it is rewritten every pass.

Ownership: the operator marks what it creates with ``COMMENT ON ROLE/SCHEMA … IS 'managed by
checkout-operator for <namespace>/<name>'`` and touches only what carries its own platform's mark:

- a role marked for another platform, or not marked at all, is refused (``OwnershipConflict``): an
  unmarked role is somebody's login, and adopting it would reset its password;
- a schema marked for another platform is refused; an unmarked one is adopted only when it is empty or
  already owned by the service's (marked) role — one with objects of unknown origin is refused.
  ``COMMENT ON … IS '<mark>'`` by hand adopts either.

States per service: ``Created`` (role and schema were both missing), ``Repaired`` (drift fixed; a
schema recreated under an existing role sets ``recreated``), ``Ready``, ``Error``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import asyncpg

from checkout_operator.outcome import Notice, Outcome
from checkout_operator.settings import PostgresClientSettings
from checkout_operator.spec import PostgresSpec, ServiceDatabase

MARK_PREFIX: Final = "managed by checkout-operator for "
"""Start of the ownership mark; the platform (``<namespace>/<name>``) follows."""

SCRAM_ITERATIONS: Final = 4096
"""PBKDF2 iterations of a verifier (PostgreSQL's own default)."""

MAINTENANCE_DATABASE: Final = "postgres"
"""Where :func:`delete_database` drops the roles when the platform's database is already gone."""

ROLE_FLAGS: Final = ("LOGIN", "SUPERUSER", "CREATEDB", "CREATEROLE", "INHERIT", "REPLICATION", "BYPASSRLS")
"""Role attributes the operator manages, as ``CREATE ROLE`` spells them."""

WANTED_FLAGS: Final = frozenset({"LOGIN"})
"""Of :data:`ROLE_FLAGS`, the ones a service role has; it has none of the others."""

DATABASE_PRIVILEGES: Final = frozenset({"CONNECT", "TEMPORARY"})
"""Explicit privileges of a service role on the database (``CREATE`` would let it make schemas)."""

REVOKE_PUBLIC_CREATE: Final = "REVOKE CREATE ON SCHEMA public FROM PUBLIC"
"""Closes schema ``public`` to every role's objects (pre-15 databases let ``PUBLIC`` create there)."""

DEFAULT_PRIVILEGE_KINDS: Final = ("TABLES", "SEQUENCES", "FUNCTIONS")
"""Objects the admin creates in a service's schema that the service role gets ``ALL`` on."""

# --- credentials ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdminCredentials:
    """The admin login from the platform's admin Secret."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ServiceLogin:
    """One service's names and the password its role must have (from its generated Secret)."""

    database: ServiceDatabase
    password: str = field(repr=False)


# --- quoting ----------------------------------------------------------------------------------------


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (always quoted, so case and keywords survive)."""
    if not name:
        raise ValueError("an SQL identifier cannot be empty")
    if "\x00" in name:
        raise ValueError(f"an SQL identifier cannot contain NUL: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """``value`` as an SQL string literal, as PostgreSQL's own ``quote_literal()`` writes it.

    Quotes are doubled; with a backslash the literal becomes ``E'…'`` with backslashes doubled, which
    reads the same whatever ``standard_conforming_strings`` is. Statements that take no bind parameters
    (``ALTER ROLE … PASSWORD``, ``COMMENT ON``) need this.
    """
    if "\x00" in value:
        raise ValueError("an SQL string literal cannot contain NUL")
    quoted = value.replace("'", "''")
    if "\\" in value:
        return "E'" + quoted.replace("\\", "\\\\") + "'"
    return "'" + quoted + "'"


# --- SCRAM-SHA-256 verifiers -----------------------------------------------------------------------

_SASLPREP_PROHIBITED = (
    stringprep.in_table_a1,  # unassigned code points: PostgreSQL prohibits them too
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(password: str) -> str:
    """The password as SCRAM clients hash it (RFC 4013 SASLprep, PostgreSQL's lenient variant).

    Like PostgreSQL's ``pg_saslprep`` and the asyncpg and libpq clients, a password that fails
    SASLprep (prohibited or bidi-mixed characters) is used unchanged rather than refused — so the
    verifier made here matches what every client proves at login.
    """
    if password.isascii():
        return password
    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char for char in password if not stringprep.in_table_b1(char)
    )
    if not mapped:
        return password
    normalised = unicodedata.normalize("NFKC", mapped)
    if not normalised or any(prohibited(char) for char in normalised for prohibited in _SASLPREP_PROHIBITED):
        return password
    if any(stringprep.in_table_d1(char) for char in normalised) and (
        not (stringprep.in_table_d1(normalised[0]) and stringprep.in_table_d1(normalised[-1]))
        or any(stringprep.in_table_d2(char) for char in normalised)
    ):
        return password
    return normalised


def _scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return stored_key, server_key


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (a fresh random salt unless given)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    stored_key, server_key = _scram_keys(password, salt, iterations)
    salt_text, stored_text, server_text = (base64.b64encode(part).decode() for part in (salt, stored_key, server_key))
    return f"SCRAM-SHA-256${iterations}:{salt_text}${stored_text}:{server_text}"


def scram_verifier_matches(verifier: str | None, password: str) -> bool:
    """Whether a stored ``rolpassword`` is a SCRAM-SHA-256 verifier of ``password`` (MD5 or none: no)."""
    if verifier is None or not verifier.startswith("SCRAM-SHA-256$"):
        return False
    try:
        iterations_salt, keys = verifier.removeprefix("SCRAM-SHA-256$").split("$")
        iterations, salt = iterations_salt.split(":")
        stored_key, server_key = (base64.b64decode(key, validate=True) for key in keys.split(":"))
        expected = _scram_keys(password, base64.b64decode(salt, validate=True), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(expected[0], stored_key) and hmac.compare_digest(expected[1], server_key)


# --- ownership marks --------------------------------------------------------------------------------


def ownership_mark(owner: str) -> str:
    """The comment the operator puts on a role or schema it manages for platform ``owner``."""
    return MARK_PREFIX + owner


def marked_owner(comment: str | None) -> str | None:
    """The platform a role's or schema's comment marks it for; ``None`` when it carries no mark."""
    if comment is None or not comment.startswith(MARK_PREFIX):
        return None
    return comment.removeprefix(MARK_PREFIX)


# --- what PostgreSQL says ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AdminFacts:
    """The connected admin and the database, as the server sees them."""

    name: str
    database: str
    superuser: bool
    createrole: bool
    can_create_schemas: bool
    public_schema_writable: bool
    """``PUBLIC`` holds ``CREATE`` on schema ``public``: every role, service roles too, may create there."""
    grants_on_database: bool = True
    """May grant ``CONNECT, TEMPORARY`` on the database (owns it, is a superuser, or holds grant options)."""
    owns_public_schema: bool = False
    """A superuser or a member of schema ``public``'s owner: may revoke ``PUBLIC``'s ``CREATE`` there."""


@dataclass(frozen=True)
class RoleFacts:
    """A service's role as it exists."""

    comment: str | None
    flags: frozenset[str]
    """Those of :data:`ROLE_FLAGS` the role has."""
    expires: bool
    """``VALID UNTIL`` is set to a finite time (after it the role cannot log in)."""
    search_path: str | None
    """The role-wide ``search_path`` setting as stored (``None`` when unset)."""
    password_current: bool | None
    """Whether the stored verifier matches the wanted password; ``None`` when it cannot be read."""
    database_privileges: frozenset[str] = frozenset()
    """Privileges granted to the role explicitly on the database."""
    other_schema_grants: tuple[str, ...] = ()
    """Schemas other than its own on which the role holds explicit grants."""


@dataclass(frozen=True)
class SchemaFacts:
    """A service's schema as it exists."""

    comment: str | None
    owner: str
    empty: bool
    role_privileges: frozenset[str] = frozenset({"USAGE", "CREATE"})
    """Which of ``USAGE``/``CREATE`` the service's role holds on it (an owner can revoke its own)."""
    default_privileges: frozenset[str] = frozenset()
    """Of :data:`DEFAULT_PRIVILEGE_KINDS`, those for which the admin's default ACL gives the role ``ALL``."""


@dataclass(frozen=True)
class ServiceFacts:
    """Everything a service's plan depends on; ``None`` for what does not exist."""

    role: RoleFacts | None
    schema: SchemaFacts | None


# --- statements -------------------------------------------------------------------------------------


def _create_role(role: str) -> str:
    flags = " ".join(flag if flag in WANTED_FLAGS else f"NO{flag}" for flag in ROLE_FLAGS)
    return f"CREATE ROLE {quote_identifier(role)} WITH {flags}"


def _alter_role(role: str, clause: str) -> str:
    return f"ALTER ROLE {quote_identifier(role)} {clause}"


def _comment(kind: Literal["ROLE", "SCHEMA"], name: str, text: str) -> str:
    return f"COMMENT ON {kind} {quote_identifier(name)} IS {quote_literal(text)}"


def _default_privileges(admin: str, schema: str, kind: str, role: str) -> str:
    return (
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote_identifier(admin)} IN SCHEMA {quote_identifier(schema)}"
        f" GRANT ALL ON {kind} TO {quote_identifier(role)}"
    )


def _search_path_is(setting: str | None, schema: str) -> bool:
    """Whether a stored ``search_path`` is exactly ``schema`` (stored bare or quoted, as the server chose)."""
    return setting in {schema, quote_identifier(schema)}


@dataclass(frozen=True)
class OwnershipConflict:
    """A role or schema of the service's name that is not this platform's to manage."""

    message: str


@dataclass(frozen=True)
class ServicePlan:
    """What one pass does to one service, decided from :class:`ServiceFacts`."""

    statements: tuple[str, ...] = field(repr=False)
    """In order; they may carry the password verifier, hence not in ``repr``."""
    state: Literal["Ready", "Created", "Repaired"]
    message: str | None = None
    recreated: bool = False
    notices: tuple[Notice, ...] = ()
    repairs: tuple[str, ...] = ()
    """Drift found and fixed, as words for the Event (beyond a missing role or schema)."""


def _conflict(database: ServiceDatabase, facts: ServiceFacts, owner: str) -> OwnershipConflict | None:
    adopt = f"drop it, or mark it with COMMENT ON {{kind}} … IS {quote_literal(ownership_mark(owner))} to adopt it"
    role_ours = False
    if facts.role is not None:
        role_owner = marked_owner(facts.role.comment)
        if role_owner is None:
            return OwnershipConflict(
                f"role {database.role} already exists and is not managed by checkout-operator; left alone"
                f" ({adopt.format(kind='ROLE')})"
            )
        if role_owner != owner:
            return OwnershipConflict(
                f"role {database.role} is managed by checkout-operator for {role_owner}, not {owner}; left alone"
                " (two platforms share the database and the topic prefix: give one another topicPrefix)"
            )
        role_ours = True
    if facts.schema is not None:
        schema_owner = marked_owner(facts.schema.comment)
        if schema_owner is not None and schema_owner != owner:
            return OwnershipConflict(
                f"schema {database.schema} is managed by checkout-operator for {schema_owner}, not {owner};"
                " left alone (two platforms share the database and the topic prefix: give one another topicPrefix)"
            )
        owned_by_our_role = role_ours and facts.schema.owner == database.role
        if schema_owner is None and not facts.schema.empty and not owned_by_our_role:
            return OwnershipConflict(
                f"schema {database.schema} already exists with objects in it (owner {facts.schema.owner}) and is"
                f" not managed by checkout-operator; left alone ({adopt.format(kind='SCHEMA')})"
            )
    return None


def plan_service(
    database: ServiceDatabase, facts: ServiceFacts, *, owner: str, admin: AdminFacts, password_verifier: str
) -> ServicePlan | OwnershipConflict:
    """The statements that take one service's role and schema from ``facts`` to the desired state.

    Pure: the same facts always give the same plan, which is what the unit tests check. Statements are
    ordered so that each one's prerequisites come first (the role before the schema it owns; a
    non-superuser admin's membership in the role before ``CREATE SCHEMA … AUTHORIZATION``).
    """
    conflict = _conflict(database, facts, owner)
    if conflict is not None:
        return conflict
    role, schema, mark = database.role, database.schema, ownership_mark(owner)
    statements: list[str] = []
    repairs: list[str] = []
    notices: list[Notice] = []

    if facts.role is None:
        statements += [_create_role(role), _comment("ROLE", role, mark)]
    else:
        drift = [
            flag if flag in WANTED_FLAGS else f"NO{flag}"
            for flag in ROLE_FLAGS
            if (flag in facts.role.flags) != (flag in WANTED_FLAGS)
        ]
        if drift:
            statements.append(_alter_role(role, "WITH " + " ".join(drift)))
            repairs.append(f"role attributes ({' '.join(drift)})")
        if facts.role.expires:
            statements.append(_alter_role(role, "VALID UNTIL 'infinity'"))
            repairs.append("password expiry")
    if not admin.superuser:
        # CREATE SCHEMA … AUTHORIZATION, ALTER SCHEMA … OWNER TO and DROP OWNED need it; idempotent.
        statements.append(f"GRANT {quote_identifier(role)} TO {quote_identifier(admin.name)}")
    if facts.role is None or facts.role.password_current is not True:
        statements.append(_alter_role(role, f"PASSWORD {quote_literal(password_verifier)}"))
        if facts.role is not None and facts.role.password_current is False:
            repairs.append("password")
    if facts.role is None or not _search_path_is(facts.role.search_path, schema):
        statements.append(_alter_role(role, f"SET search_path TO {quote_identifier(schema)}"))
        if facts.role is not None:
            repairs.append("search_path")
    # An admin that may not grant on the database would only get a "no privileges were granted" warning
    # every pass: then the role connects through PUBLIC's default CONNECT, TEMPORARY like any role.
    granted = frozenset() if facts.role is None else facts.role.database_privileges
    if admin.grants_on_database and (missing := DATABASE_PRIVILEGES - granted):
        statements.append(
            f"GRANT {', '.join(sorted(missing))} ON DATABASE {quote_identifier(admin.database)}"
            f" TO {quote_identifier(role)}"
        )
        if facts.role is not None:
            repairs.append(f"{', '.join(sorted(missing))} on the database")
    if admin.grants_on_database and (extra := granted - DATABASE_PRIVILEGES):
        statements.append(
            f"REVOKE {', '.join(sorted(extra))} ON DATABASE {quote_identifier(admin.database)}"
            f" FROM {quote_identifier(role)}"
        )
        repairs.append(f"revoked {', '.join(sorted(extra))} on the database")
    others = () if facts.role is None else facts.role.other_schema_grants
    for other in others:
        statements.append(f"REVOKE ALL ON SCHEMA {quote_identifier(other)} FROM {quote_identifier(role)}")
    if others:
        repairs.append(f"revoked grants on schema {', '.join(others)}")

    if facts.schema is None:
        statements += [
            f"CREATE SCHEMA {quote_identifier(schema)} AUTHORIZATION {quote_identifier(role)}",
            _comment("SCHEMA", schema, mark),
        ]
    else:
        # With the role just (re)created, handing the schema to it and granting it are part of that repair.
        role_existed = facts.role is not None
        if facts.schema.owner != role:
            statements.append(f"ALTER SCHEMA {quote_identifier(schema)} OWNER TO {quote_identifier(role)}")
            if role_existed:
                repairs.append(f"schema owner (was {facts.schema.owner})")
        if marked_owner(facts.schema.comment) is None:
            statements.append(_comment("SCHEMA", schema, mark))
            if role_existed:
                repairs.append("adopted the unmarked schema")
        if role_existed and (missing_rights := frozenset({"USAGE", "CREATE"}) - facts.schema.role_privileges):
            statements.append(f"GRANT USAGE, CREATE ON SCHEMA {quote_identifier(schema)} TO {quote_identifier(role)}")
            repairs.append(f"{', '.join(sorted(missing_rights))} on its schema")
    have = frozenset() if facts.schema is None or facts.role is None else facts.schema.default_privileges
    missing_kinds = [kind for kind in DEFAULT_PRIVILEGE_KINDS if kind not in have]
    statements += [_default_privileges(admin.name, schema, kind, role) for kind in missing_kinds]
    if missing_kinds and facts.schema is not None and facts.role is not None:
        repairs.append(f"default privileges on {', '.join(kind.lower() for kind in missing_kinds)}")

    state: Literal["Ready", "Created", "Repaired"] = "Ready"
    message: str | None = None
    recreated = False
    if facts.role is None and facts.schema is None:
        state, message = "Created", f"created role {role} and schema {schema}"
        notices.append(Notice("Normal", "DatabaseProvisioned", f"{database.service}: {message}"))
    elif facts.schema is None:
        state, recreated = "Repaired", True
        message = (
            f"schema {schema} was missing and was recreated (empty: the {database.service} service's"
            " migrations repopulate it when it next starts)"
        )
        notices.append(Notice("Warning", "SchemaRecreated", message))
    elif facts.role is None and marked_owner(facts.schema.comment) is None:
        state, message = "Created", f"created role {role} and adopted the existing empty schema {schema}"
        notices.append(Notice("Normal", "DatabaseProvisioned", f"{database.service}: {message}"))
    elif facts.role is None:
        state = "Repaired"
        message = f"role {role} was missing and was recreated; schema {schema} was given back to it"
        notices.append(Notice("Warning", "RoleRecreated", message))
    if repairs:
        repaired = f"repaired {', '.join(repairs)} of role {role} / schema {schema}"
        state = "Repaired"
        message = repaired if message is None else f"{message}; {repaired}"
        notices.append(Notice("Warning", "DatabaseDriftRepaired", f"{database.service}: {repaired}"))
    return ServicePlan(
        statements=tuple(statements),
        state=state,
        message=message,
        recreated=recreated,
        notices=tuple(notices),
        repairs=tuple(repairs),
    )


@dataclass(frozen=True)
class DeletionPlan:
    """What :func:`delete_database` drops for one service, and what it leaves alone and why."""

    drop_schema: bool
    drop_role: bool
    kept: tuple[str, ...] = ()

    def statements(self, database: ServiceDatabase) -> tuple[str, ...]:
        """The drops, in an order that works: the schema, what else the role owns here, the role."""
        statements = []
        if self.drop_schema:
            statements.append(f"DROP SCHEMA IF EXISTS {quote_identifier(database.schema)} CASCADE")
        if self.drop_role:
            statements += [
                f"DROP OWNED BY {quote_identifier(database.role)}",
                f"DROP ROLE IF EXISTS {quote_identifier(database.role)}",
            ]
        return tuple(statements)


def plan_deletion(database: ServiceDatabase, facts: ServiceFacts, *, owner: str) -> DeletionPlan:
    """Drop only what carries ``owner``'s mark (or, unmarked, is owned by ``owner``'s role)."""
    kept: list[str] = []
    role_ours = facts.role is not None and marked_owner(facts.role.comment) == owner
    if facts.role is not None and not role_ours:
        other = marked_owner(facts.role.comment)
        kept.append(f"role {database.role} ({'not managed by checkout-operator' if other is None else 'of ' + other})")
    drop_schema = False
    if facts.schema is not None:
        other = marked_owner(facts.schema.comment)
        drop_schema = other == owner or (other is None and role_ours and facts.schema.owner == database.role)
        if not drop_schema:
            kept.append(
                f"schema {database.schema} ({'not managed by checkout-operator' if other is None else 'of ' + other})"
            )
    # A kept schema the role still owns would make DROP OWNED take it along: keep the role too.
    if role_ours and facts.schema is not None and not drop_schema and facts.schema.owner == database.role:
        kept.append(f"role {database.role} (owns the schema left alone)")
        role_ours = False
    return DeletionPlan(drop_schema=drop_schema, drop_role=role_ours, kept=tuple(kept))


# --- talking to PostgreSQL --------------------------------------------------------------------------

_ADMIN_QUERY: Final = """
SELECT current_user AS name, current_database() AS database, r.rolsuper, r.rolcreaterole,
       has_database_privilege(current_database(), 'CREATE') AS can_create_schemas,
       has_database_privilege(current_database(), 'CONNECT WITH GRANT OPTION')
         AND has_database_privilege(current_database(), 'TEMPORARY WITH GRANT OPTION') AS grants_on_database,
       EXISTS (SELECT 1 FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
               WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE') AS public_writable,
       r.rolsuper OR EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = 'public'
                             AND pg_has_role(current_user, n.nspowner, 'USAGE')) AS owns_public_schema
FROM pg_roles r WHERE r.rolname = current_user
"""

_ROLE_QUERY: Final = """
SELECT r.oid, shobj_description(r.oid, 'pg_authid') AS comment,
       r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolinherit, r.rolreplication, r.rolbypassrls,
       r.rolvaliduntil IS NOT NULL AND r.rolvaliduntil <> 'infinity' AS expires,
       (SELECT substr(setting, length('search_path=') + 1) FROM unnest(r.rolconfig) AS setting
        WHERE setting LIKE 'search\\_path=%') AS search_path,
       ARRAY(SELECT a.privilege_type FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a
             WHERE d.datname = current_database() AND a.grantee = r.oid) AS database_privileges,
       ARRAY(SELECT DISTINCT n.nspname FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
             WHERE a.grantee = r.oid AND n.nspname <> $2 AND n.nspowner <> r.oid ORDER BY n.nspname) AS other_schemas
FROM pg_roles r WHERE r.rolname = $1
"""

_STORED_VERIFIER_QUERY: Final = "SELECT rolpassword FROM pg_authid WHERE rolname = $1"

_SCHEMA_QUERY: Final = """
SELECT n.oid, pg_get_userbyid(n.nspowner) AS owner, obj_description(n.oid, 'pg_namespace') AS comment,
       NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = n.oid
                   AND d.classid <> 'pg_default_acl'::regclass) AS empty
FROM pg_namespace n WHERE n.nspname = $1
"""

_SCHEMA_RIGHTS_QUERY: Final = """
SELECT ARRAY(SELECT p FROM unnest(ARRAY['USAGE', 'CREATE']) AS p WHERE has_schema_privilege($1::oid, $2::oid, p))
         AS role_privileges,
       ARRAY(SELECT k.kind FROM (VALUES ('TABLES', 'r', 'r'), ('SEQUENCES', 'S', 's'), ('FUNCTIONS', 'f', 'f'))
                                AS k(kind, defacl_type, acl_type)
             WHERE NOT EXISTS (
                 SELECT p.privilege_type FROM aclexplode(acldefault(k.acl_type::"char", $1::oid)) p
                 WHERE p.grantee = $1::oid
                 EXCEPT
                 SELECT a.privilege_type FROM pg_default_acl d CROSS JOIN LATERAL aclexplode(d.defaclacl) a
                 WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
                   AND d.defaclnamespace = $2::oid AND d.defaclobjtype = k.defacl_type::"char"
                   AND a.grantee = $1::oid)) AS default_privileges
"""
# acldefault() and pg_default_acl spell object kinds differently: sequences are 's' in one, 'S' in the other.

_TERMINATE_QUERY: Final = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1"


_FLAG_COLUMNS: Final = {  # pg_roles column of each of ROLE_FLAGS
    "LOGIN": "rolcanlogin",
    "SUPERUSER": "rolsuper",
    "CREATEDB": "rolcreatedb",
    "CREATEROLE": "rolcreaterole",
    "INHERIT": "rolinherit",
    "REPLICATION": "rolreplication",
    "BYPASSRLS": "rolbypassrls",
}


def _lock_key(role: str) -> int:
    """A stable advisory-lock key per role: two passes (or two replicas) never work on one service at once."""
    digest = hashlib.sha256(f"checkout-operator/{role}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _observe_admin(connection: Any) -> AdminFacts:
    row = await connection.fetchrow(_ADMIN_QUERY)
    return AdminFacts(
        name=str(row["name"]),
        database=str(row["database"]),
        superuser=bool(row["rolsuper"]),
        createrole=bool(row["rolcreaterole"]),
        can_create_schemas=bool(row["can_create_schemas"]),
        public_schema_writable=bool(row["public_writable"]),
        grants_on_database=bool(row["grants_on_database"]),
        owns_public_schema=bool(row["owns_public_schema"]),
    )


async def _observe_service(
    connection: Any, database: ServiceDatabase, admin: AdminFacts, password: str | None
) -> ServiceFacts:
    """Read one service's role and schema (``password`` given: also whether the role's password is it)."""
    role_row = await connection.fetchrow(_ROLE_QUERY, database.role, database.schema)
    schema_row = await connection.fetchrow(_SCHEMA_QUERY, database.schema)
    role: RoleFacts | None = None
    if role_row is not None:
        password_current: bool | None = None
        if password is not None and admin.superuser:  # pg_authid is readable by superusers only
            stored = await connection.fetchval(_STORED_VERIFIER_QUERY, database.role)
            password_current = scram_verifier_matches(stored, password)
        role = RoleFacts(
            comment=role_row["comment"],
            flags=frozenset(flag for flag in ROLE_FLAGS if role_row[_FLAG_COLUMNS[flag]]),
            expires=bool(role_row["expires"]),
            search_path=role_row["search_path"],
            password_current=password_current,
            database_privileges=frozenset(role_row["database_privileges"]),
            other_schema_grants=tuple(role_row["other_schemas"]),
        )
    schema: SchemaFacts | None = None
    if schema_row is not None:
        role_privileges: frozenset[str] = frozenset()
        default_privileges: frozenset[str] = frozenset()
        if role_row is not None:
            rights = await connection.fetchrow(_SCHEMA_RIGHTS_QUERY, role_row["oid"], schema_row["oid"])
            role_privileges = frozenset(rights["role_privileges"])
            default_privileges = frozenset(rights["default_privileges"])
        schema = SchemaFacts(
            comment=schema_row["comment"],
            owner=str(schema_row["owner"]),
            empty=bool(schema_row["empty"]),
            role_privileges=role_privileges,
            default_privileges=default_privileges,
        )
    return ServiceFacts(role=role, schema=schema)


async def _connect(
    postgres: PostgresSpec, database: str, admin: AdminCredentials, client: PostgresClientSettings
) -> Any:
    """An admin connection bounded by ``client.timeout_s``: to connect, and per statement on both ends."""
    return await asyncpg.connect(
        host=postgres.host,
        port=postgres.port,
        user=admin.username,
        password=admin.password,
        database=database,
        timeout=client.timeout_s,
        command_timeout=client.timeout_s,
        statement_cache_size=0,  # a few statements per pass; and poolers in transaction mode cannot hold them
        server_settings={
            "application_name": "checkout-operator",
            "statement_timeout": str(int(client.timeout_s * 1000)),
        },
    )


async def _close(connection: Any, client: PostgresClientSettings) -> None:
    try:
        await connection.close(timeout=client.timeout_s)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        connection.terminate()


# --- failures ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """Why (part of) a pass failed, in the words of the condition."""

    reason: str
    message: str
    retry: bool = True
    connection_lost: bool = False
    """The connection is gone: the rest of the pass cannot run."""


_CONNECTION_ERRORS: Final = (
    OSError,
    TimeoutError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.OperatorInterventionError,  # admin shutdown, statement timeout (query_canceled)
)


def describe_failure(
    error: BaseException, *, postgres: PostgresSpec, database: str, admin: str, client: PostgresClientSettings
) -> Failure | None:
    """The condition for an error of the server or the network; ``None`` for anything else (a bug)."""
    where = f"{database}@{postgres.host}:{postgres.port}"
    if isinstance(error, TimeoutError | asyncpg.QueryCanceledError):
        return Failure(
            "PostgresUnreachable",
            f"PostgreSQL at {postgres.host}:{postgres.port} did not answer within {client.timeout_s:g}s; retrying",
            connection_lost=isinstance(error, TimeoutError),
        )
    if isinstance(error, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return Failure(
            "AuthenticationFailed",
            f"PostgreSQL at {postgres.host}:{postgres.port} refused user {admin!r} ({error}); check the username"
            f" and password in the admin Secret {postgres.admin_secret_ref.name!r}; retrying",
            connection_lost=True,
        )
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return Failure(
            "DatabaseMissing",
            f"database {database!r} does not exist on {postgres.host}:{postgres.port}; create it or correct"
            " spec.postgres.database; retrying",
            connection_lost=True,
        )
    if isinstance(error, _CONNECTION_ERRORS):
        detail = str(error) or type(error).__name__
        return Failure(
            "PostgresUnreachable",
            f"PostgreSQL at {postgres.host}:{postgres.port} is unreachable ({detail}); retrying",
            connection_lost=True,
        )
    if isinstance(error, asyncpg.InsufficientPrivilegeError):
        return Failure(
            "InsufficientPrivilege",
            f"admin user {admin!r} lacks a privilege in {where} ({error}); it needs CREATEROLE and CREATE on the"
            " database (or superuser): fix it or the admin Secret; retrying",
        )
    if isinstance(error, asyncpg.PostgresError):
        return Failure("PostgresError", f"PostgreSQL error in {where}: {error} (SQLSTATE {error.sqlstate}); retrying")
    return None


def _missing_rights(admin: AdminFacts, postgres: PostgresSpec) -> Failure | None:
    """Refuse up front, before touching anything, an admin that cannot do the job."""
    if admin.superuser:
        return None
    lacking = [] if admin.createrole else ["CREATEROLE"]
    if not admin.can_create_schemas:
        lacking.append(f"CREATE on database {admin.database}")
    if not lacking:
        return None
    return Failure(
        "InsufficientPrivilege",
        f"admin user {admin.name!r} lacks {' and '.join(lacking)} in {admin.database}@{postgres.host}:{postgres.port}"
        " (it creates roles and schemas): grant it, or put a superuser in the admin Secret; retrying",
    )


# --- the passes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceResult:
    """How one service came out of a pass: its status entry, its Events and, if failed, why."""

    database: ServiceDatabase
    state: str
    message: str | None = None
    recreated: bool = False
    notices: tuple[Notice, ...] = ()
    failure: Failure | None = None

    def entry(self) -> dict[str, Any]:
        """The service's entry in the status detail."""
        entry: dict[str, Any] = {
            "service": self.database.service,
            "schema": self.database.schema,
            "role": self.database.role,
            "state": self.state,
        }
        if self.message:
            entry["message"] = self.message
        if self.recreated:
            entry["recreated"] = True
        return entry


def _failed(database: ServiceDatabase, failure: Failure) -> ServiceResult:
    return ServiceResult(database=database, state="Error", message=failure.message, failure=failure)


def _not_reached(databases: Sequence[ServiceDatabase], failure: Failure) -> list[ServiceResult]:
    """The services a pass never got to, with why."""
    skipped = Failure(failure.reason, f"not reconciled: {failure.message}", failure.retry)
    return [_failed(database, skipped) for database in databases]


def failed_pass(databases: Sequence[ServiceDatabase], failure: Failure) -> Outcome:
    """The outcome of a pass that could not start (no connection, an admin without the rights)."""
    return Outcome(
        ready=False,
        reason=failure.reason,
        message=failure.message,
        detail=[result.entry() for result in _not_reached(databases, failure)],
        retry=failure.retry,
    )


def summarise(results: Sequence[ServiceResult], *, ready_reason: str, ready_message: str) -> Outcome:
    """One outcome for a pass: ready when every service is; otherwise the first failure, with the tally."""
    notices = [notice for result in results for notice in result.notices]
    detail = [result.entry() for result in results]
    failed = [(result, result.failure) for result in results if result.failure is not None]
    if not failed:
        return Outcome(ready=True, reason=ready_reason, message=ready_message, detail=detail, notices=notices)
    (first, failure), names = failed[0], ", ".join(result.database.service for result, _ in failed)
    return Outcome(
        ready=False,
        reason=failure.reason,
        message=(
            f"{first.database.service}: {failure.message}"
            f" ({len(results) - len(failed)} of {len(results)} services done; not done: {names})"
        ),
        detail=detail,
        notices=notices,
        retry=any(failure.retry for _, failure in failed),
    )


_EXPECTED_ERRORS: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
"""What the server or the network may raise; :func:`describe_failure` turns them into conditions."""


async def _reconcile_service(
    connection: Any, login: ServiceLogin, owner: str, admin: AdminFacts
) -> ServicePlan | OwnershipConflict:
    """One service in one transaction: lock, observe, plan, apply — all or nothing."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(login.database.role))
        facts = await _observe_service(connection, login.database, admin, login.password)
        plan = plan_service(
            login.database, facts, owner=owner, admin=admin, password_verifier=scram_verifier(login.password)
        )
        if isinstance(plan, ServicePlan):
            for statement in plan.statements:
                await connection.execute(statement)
    return plan


async def reconcile_database(
    postgres: PostgresSpec,
    admin: AdminCredentials,
    logins: Sequence[ServiceLogin],
    owner: str,
    client: PostgresClientSettings,
) -> Outcome:
    """Converge every service's role and schema; never raises for a server or network problem.

    ``owner`` is the platform (``<namespace>/<name>``); only roles and schemas marked for it are
    touched. Services are done one transaction each, in order; a failing one does not stop the others
    unless the connection is lost, and the detail says which are done and which are not.
    """
    target = f"{postgres.database}@{postgres.host}:{postgres.port}"
    databases = [login.database for login in logins]

    def failure_of(error: BaseException) -> Failure:
        failure = describe_failure(
            error, postgres=postgres, database=postgres.database, admin=admin.username, client=client
        )
        if failure is None:
            raise error
        return failure

    try:
        connection = await _connect(postgres, postgres.database, admin, client)
    except _EXPECTED_ERRORS as error:
        return failed_pass(databases, failure_of(error))
    try:
        try:
            facts = await _observe_admin(connection)
        except _EXPECTED_ERRORS as error:
            return failed_pass(databases, failure_of(error))
        refused = _missing_rights(facts, postgres)
        if refused is not None:
            return failed_pass(databases, refused)
        hardened: list[Notice] = []
        if facts.public_schema_writable and facts.owns_public_schema:
            try:
                await connection.execute(REVOKE_PUBLIC_CREATE)
            except _EXPECTED_ERRORS as error:
                return failed_pass(databases, failure_of(error))
            facts = dataclasses.replace(facts, public_schema_writable=False)
            hardened.append(
                Notice(
                    "Warning",
                    "PublicSchemaHardened",
                    f"PUBLIC could CREATE in schema public of {postgres.database}, so every service role could"
                    f" too: ran {REVOKE_PUBLIC_CREATE} (PostgreSQL 15's default)",
                )
            )
        results: list[ServiceResult] = []
        for index, login in enumerate(logins):
            try:
                plan = await _reconcile_service(connection, login, owner, facts)
            except _EXPECTED_ERRORS as error:
                failure = failure_of(error)
                results.append(_failed(login.database, failure))
                if failure.connection_lost:
                    results += _not_reached(databases[index + 1 :], failure)
                    break
                continue
            if isinstance(plan, OwnershipConflict):
                results.append(_failed(login.database, Failure("OwnershipConflict", plan.message, retry=False)))
                continue
            results.append(
                ServiceResult(
                    database=login.database,
                    state=plan.state,
                    message=plan.message,
                    recreated=plan.recreated,
                    notices=plan.notices,
                )
            )
    finally:
        await _close(connection, client)
    message = f"{len(results)} schemas and roles ready in {target}"
    if facts.public_schema_writable:
        message += (
            "; note: PUBLIC may CREATE in schema public, so every service role can too"
            f" ({REVOKE_PUBLIC_CREATE} by its owner closes it)"
        )
    outcome = summarise(results, ready_reason="DatabaseReady", ready_message=message)
    return dataclasses.replace(outcome, notices=[*hardened, *outcome.notices]) if hardened else outcome


async def _delete_service(
    connection: Any, database: ServiceDatabase, owner: str, admin: AdminFacts, *, database_gone: bool
) -> ServiceResult:
    """Drop one service's schema and role if they are ``owner``'s; report what is left alone.

    The role is first barred from logging in and its sessions are ended (they would hold locks the
    drops wait for, or log in again between the two), then everything is dropped in one transaction.
    """
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(database.role))
        facts = await _observe_service(connection, database, admin, password=None)
        if database_gone:
            facts = ServiceFacts(role=facts.role, schema=None)
        plan = plan_deletion(database, facts, owner=owner)
        if plan.drop_role:
            if not admin.superuser:
                await connection.execute(f"GRANT {quote_identifier(database.role)} TO {quote_identifier(admin.name)}")
            await connection.execute(_alter_role(database.role, "NOLOGIN"))
    if plan.drop_role:
        await connection.fetchval(_TERMINATE_QUERY, database.role)
    statements = plan.statements(database)
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(database.role))
        for statement in statements:
            await connection.execute(statement)
    if plan.kept:
        message = f"left alone: {', '.join(plan.kept)}"
        notice = Notice("Warning", "DatabaseObjectsKept", f"{database.service}: {message}")
        return ServiceResult(database=database, state="Kept", message=message, notices=(notice,))
    dropped = [
        f"{kind} {name}"
        for kind, name, done in (("schema", database.schema, plan.drop_schema), ("role", database.role, plan.drop_role))
        if done
    ]
    if not dropped:
        return ServiceResult(database=database, state="Absent")
    return ServiceResult(database=database, state="Deleted", message=f"dropped {' and '.join(dropped)}")


async def delete_database(
    postgres: PostgresSpec,
    admin: AdminCredentials,
    databases: Sequence[ServiceDatabase],
    owner: str,
    client: PostgresClientSettings,
) -> Outcome:
    """Drop the schemas and roles ``owner`` manages; leave everything else and report it.

    Detail states: ``Deleted``, ``Absent`` (nothing was there), ``Kept`` (something of the service's name
    is not ``owner``'s and was left alone), ``Error``. Roles are server-wide, so when the platform's
    database is already gone they are dropped from :data:`MAINTENANCE_DATABASE` instead.
    """
    target = f"{postgres.database}@{postgres.host}:{postgres.port}"

    def failure_of(error: BaseException, database: str) -> Failure:
        failure = describe_failure(error, postgres=postgres, database=database, admin=admin.username, client=client)
        if failure is None:
            raise error
        return failure

    database_gone = False
    try:
        connection = await _connect(postgres, postgres.database, admin, client)
    except asyncpg.InvalidCatalogNameError:
        database_gone = True
        try:
            connection = await _connect(postgres, MAINTENANCE_DATABASE, admin, client)
        except _EXPECTED_ERRORS as error:
            return failed_pass(databases, failure_of(error, MAINTENANCE_DATABASE))
    except _EXPECTED_ERRORS as error:
        return failed_pass(databases, failure_of(error, postgres.database))
    try:
        try:
            facts = await _observe_admin(connection)
        except _EXPECTED_ERRORS as error:
            return failed_pass(databases, failure_of(error, postgres.database))
        results: list[ServiceResult] = []
        for index, database in enumerate(databases):
            try:
                results.append(await _delete_service(connection, database, owner, facts, database_gone=database_gone))
            except _EXPECTED_ERRORS as error:
                failure = failure_of(error, facts.database)
                results.append(_failed(database, failure))
                if failure.connection_lost:
                    results += _not_reached(databases[index + 1 :], failure)
                    break
    finally:
        await _close(connection, client)
    message = f"dropped the schemas and roles of {len(results)} services from {target}"
    if database_gone:
        message = f"database {postgres.database} is gone; dropped the roles of {len(results)} services"
    kept = [result.message for result in results if result.state == "Kept" and result.message]
    if kept:
        message += f"; {'; '.join(kept)}"
    return summarise(results, ready_reason="DatabaseDeleted", ready_message=message)
