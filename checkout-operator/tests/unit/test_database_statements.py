"""The database reconciler's pure parts: quoting, SCRAM verifiers, and the statements planned per service."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace

import asyncpg
import pytest

from checkout_operator.outcome import Notice
from checkout_operator.reconcilers.database import (
    AdminCredentials,
    AdminFacts,
    DeletionPlan,
    Failure,
    OwnershipConflict,
    RoleFacts,
    SchemaFacts,
    ServiceFacts,
    ServiceLogin,
    ServicePlan,
    ServiceResult,
    describe_failure,
    failed_pass,
    marked_owner,
    ownership_mark,
    plan_deletion,
    plan_service,
    quote_identifier,
    quote_literal,
    saslprep,
    scram_verifier,
    scram_verifier_matches,
    summarise,
)
from checkout_operator.settings import PostgresClientSettings
from checkout_operator.spec import PlatformSpec, ServiceDatabase, service_database

OWNER = "shop-ns/shop"
MARK = "managed by checkout-operator for shop-ns/shop"
ORDER = ServiceDatabase(
    service="order", schema="checkout_orders", role="checkout_checkout_orders", secret_name="shop-order-database"
)
ADMIN = AdminFacts(
    name="postgres",
    database="checkout",
    superuser=True,
    createrole=True,
    can_create_schemas=True,
    public_schema_writable=False,
)
VERIFIER = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"
ROLE_AS_WANTED = RoleFacts(
    comment=MARK,
    flags=frozenset({"LOGIN"}),
    expires=False,
    search_path="checkout_orders",
    password_current=True,
    database_privileges=frozenset({"CONNECT", "TEMPORARY"}),
)
SCHEMA_AS_WANTED = SchemaFacts(
    comment=MARK,
    owner="checkout_checkout_orders",
    empty=False,
    default_privileges=frozenset({"TABLES", "SEQUENCES", "FUNCTIONS"}),
)
AS_WANTED = ServiceFacts(role=ROLE_AS_WANTED, schema=SCHEMA_AS_WANTED)
NOTHING = ServiceFacts(role=None, schema=None)
DEFAULT_PRIVILEGES = [
    'ALTER DEFAULT PRIVILEGES FOR ROLE "postgres" IN SCHEMA "checkout_orders" GRANT ALL ON TABLES'
    ' TO "checkout_checkout_orders"',
    'ALTER DEFAULT PRIVILEGES FOR ROLE "postgres" IN SCHEMA "checkout_orders" GRANT ALL ON SEQUENCES'
    ' TO "checkout_checkout_orders"',
    'ALTER DEFAULT PRIVILEGES FOR ROLE "postgres" IN SCHEMA "checkout_orders" GRANT ALL ON FUNCTIONS'
    ' TO "checkout_checkout_orders"',
]


def plan(facts: ServiceFacts, *, admin: AdminFacts = ADMIN, database: ServiceDatabase = ORDER) -> ServicePlan:
    result = plan_service(database, facts, owner=OWNER, admin=admin, password_verifier=VERIFIER)
    assert isinstance(result, ServicePlan), result
    return result


def conflict(facts: ServiceFacts) -> str:
    result = plan_service(ORDER, facts, owner=OWNER, admin=ADMIN, password_verifier=VERIFIER)
    assert isinstance(result, OwnershipConflict), result
    return result.message


def with_role(**changes: object) -> ServiceFacts:
    return replace(AS_WANTED, role=replace(ROLE_AS_WANTED, **changes))


def with_schema(**changes: object) -> ServiceFacts:
    return replace(AS_WANTED, schema=replace(SCHEMA_AS_WANTED, **changes))


def reasons(notices: tuple[Notice, ...] | list[Notice]) -> list[str]:
    return [notice.reason for notice in notices]


# --- quoting ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("checkout_orders", '"checkout_orders"'),
        ("Mixed Case", '"Mixed Case"'),
        ("select", '"select"'),
        ('say "hi"', '"say ""hi"""'),
        ('"', '""""'),
        ("back\\slash", '"back\\slash"'),  # backslashes mean nothing in identifiers
        ("ünïcødé ☃", '"ünïcødé ☃"'),
        ("x; DROP ROLE postgres; --", '"x; DROP ROLE postgres; --"'),
    ],
)
def test_identifiers_are_always_double_quoted_with_quotes_doubled(name: str, quoted: str) -> None:
    assert quote_identifier(name) == quoted


@pytest.mark.parametrize("name", ["", "nul\x00byte"])
def test_identifiers_postgresql_cannot_hold_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        quote_identifier(name)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", "'plain'"),
        ("", "''"),
        ("it's", "'it''s'"),
        ("''", "''''''"),
        ("back\\slash", "E'back\\\\slash'"),
        ("both \\' mixed", "E'both \\\\'' mixed'"),
        ("ünïcødé ☃ 漢字", "'ünïcødé ☃ 漢字'"),
        ("$$dollar$$", "'$$dollar$$'"),
        ("'; DROP ROLE postgres; --", "'''; DROP ROLE postgres; --'"),
    ],
)
def test_literals_are_quoted_as_postgresql_quote_literal_does(value: str, quoted: str) -> None:
    assert quote_literal(value) == quoted


def test_literals_with_nul_are_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        quote_literal("a\x00b")


# --- SCRAM ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "prepared"),
    [
        ("plain ascii \x07 stays", "plain ascii \x07 stays"),  # ASCII is taken as is, as libpq and the server do
        ("ﬁne", "fine"),  # NFKC
        ("non\u00a0breaking", "non breaking"),  # non-ASCII space → space
        ("soft\u00adhyphen", "softhyphen"),  # mapped to nothing
        ("bell ü \x07", "bell ü \x07"),  # a prohibited character: used unchanged
        ("\u05d0abc\u05d0", "\u05d0abc\u05d0"),  # right-to-left mixed with left-to-right: used unchanged
        ("\u00ad", "\u00ad"),  # nothing left after mapping: used unchanged
    ],
)
def test_saslprep_normalises_like_postgresql_clients(password: str, prepared: str) -> None:
    assert saslprep(password) == prepared


def test_verifier_matches_the_rfc_7677_exchange() -> None:
    """RFC 7677's SCRAM-SHA-256 example: the keys of our verifier produce its proof and signature."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = scram_verifier("pencil", salt=salt, iterations=4096)
    _, keys = verifier.removeprefix("SCRAM-SHA-256$").split("$")
    stored_key, server_key = (base64.b64decode(key) for key in keys.split(":"))
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}"
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_signature = hmac.digest(stored_key, auth_message.encode(), "sha256")
    client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))

    assert hashlib.sha256(client_key).digest() == stored_key
    assert hmac.digest(server_key, auth_message.encode(), "sha256") == base64.b64decode(
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    )
    assert verifier.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")


def test_verifiers_are_salted_afresh_and_checked_against_the_password() -> None:
    first, second = scram_verifier("s3cret"), scram_verifier("s3cret")

    assert first != second
    assert scram_verifier_matches(first, "s3cret")
    assert scram_verifier_matches(second, "s3cret")
    assert not scram_verifier_matches(first, "s3cret ")
    assert scram_verifier_matches(scram_verifier("ﬁne"), "fine")  # the same after SASLprep


@pytest.mark.parametrize(
    "stored",
    [None, "", "md5" + "0" * 32, "plain", "SCRAM-SHA-256$", "SCRAM-SHA-256$x:y$z:w", "SCRAM-SHA-256$4096:!!$a:b"],
)
def test_anything_but_a_scram_verifier_does_not_match(stored: str | None) -> None:
    assert not scram_verifier_matches(stored, "s3cret")


def test_passwords_stay_out_of_reprs() -> None:
    admin, login = AdminCredentials("postgres", "admin-pw"), ServiceLogin(ORDER, "service-pw")
    planned = plan(NOTHING)

    assert "admin-pw" not in repr(admin)
    assert "service-pw" not in repr(login)
    assert VERIFIER not in repr(planned)
    assert any(VERIFIER in statement for statement in planned.statements)


# --- ownership marks --------------------------------------------------------------------------------


def test_marks_name_the_platform() -> None:
    assert ownership_mark(OWNER) == MARK
    assert marked_owner(MARK) == OWNER
    assert marked_owner("managed by checkout-operator for other/platform") == "other/platform"
    assert marked_owner("a DBA's own note") is None
    assert marked_owner(None) is None


# --- plan_service -----------------------------------------------------------------------------------


def test_nothing_there_creates_role_then_schema_with_every_grant() -> None:
    planned = plan(NOTHING)

    assert list(planned.statements) == [
        'CREATE ROLE "checkout_checkout_orders" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT'
        " NOREPLICATION NOBYPASSRLS",
        f"COMMENT ON ROLE \"checkout_checkout_orders\" IS '{MARK}'",
        f"ALTER ROLE \"checkout_checkout_orders\" PASSWORD '{VERIFIER}'",
        'ALTER ROLE "checkout_checkout_orders" SET search_path TO "checkout_orders"',
        'GRANT CONNECT, TEMPORARY ON DATABASE "checkout" TO "checkout_checkout_orders"',
        'CREATE SCHEMA "checkout_orders" AUTHORIZATION "checkout_checkout_orders"',
        f"COMMENT ON SCHEMA \"checkout_orders\" IS '{MARK}'",
        *DEFAULT_PRIVILEGES,
    ]
    assert planned.state == "Created"
    assert not planned.recreated
    assert planned.notices == (
        Notice(
            "Normal",
            "DatabaseProvisioned",
            "order: created role checkout_checkout_orders and schema checkout_orders",
        ),
    )


def test_as_wanted_plans_nothing() -> None:
    planned = plan(AS_WANTED)

    assert planned == ServicePlan(statements=(), state="Ready")


def test_a_password_that_cannot_be_read_is_set_every_pass_without_a_word() -> None:
    planned = plan(with_role(password_current=None))

    assert list(planned.statements) == [f"ALTER ROLE \"checkout_checkout_orders\" PASSWORD '{VERIFIER}'"]
    assert planned.state == "Ready"
    assert planned.notices == ()


def test_a_changed_password_is_set_back_and_reported() -> None:
    planned = plan(with_role(password_current=False))

    assert list(planned.statements) == [f"ALTER ROLE \"checkout_checkout_orders\" PASSWORD '{VERIFIER}'"]
    assert planned.state == "Repaired"
    assert planned.repairs == ("password",)
    assert reasons(planned.notices) == ["DatabaseDriftRepaired"]
    assert planned.notices[0].type == "Warning"


def test_a_dropped_schema_is_recreated_and_flagged_for_a_migration_rerun() -> None:
    planned = plan(replace(AS_WANTED, schema=None))

    assert list(planned.statements) == [
        'CREATE SCHEMA "checkout_orders" AUTHORIZATION "checkout_checkout_orders"',
        f"COMMENT ON SCHEMA \"checkout_orders\" IS '{MARK}'",
        *DEFAULT_PRIVILEGES,
    ]
    assert planned.state == "Repaired"
    assert planned.recreated
    assert planned.notices == (
        Notice(
            "Warning",
            "SchemaRecreated",
            "schema checkout_orders was missing and was recreated (empty: the order service's migrations"
            " repopulate it when it next starts)",
        ),
    )


def test_a_dropped_role_is_recreated_and_given_its_schema_back() -> None:
    planned = plan(replace(AS_WANTED, role=None, schema=replace(SCHEMA_AS_WANTED, owner="postgres")))

    assert 'ALTER SCHEMA "checkout_orders" OWNER TO "checkout_checkout_orders"' in planned.statements
    assert planned.statements[0].startswith('CREATE ROLE "checkout_checkout_orders"')
    assert planned.state == "Repaired"
    assert not planned.recreated
    assert reasons(planned.notices) == ["RoleRecreated"]


def test_an_empty_unmarked_schema_is_adopted() -> None:
    planned = plan(replace(AS_WANTED, role=None, schema=SchemaFacts(comment=None, owner="postgres", empty=True)))

    assert 'ALTER SCHEMA "checkout_orders" OWNER TO "checkout_checkout_orders"' in planned.statements
    assert f"COMMENT ON SCHEMA \"checkout_orders\" IS '{MARK}'" in planned.statements
    assert planned.state == "Created"
    assert reasons(planned.notices) == ["DatabaseProvisioned"]
    assert "adopted" in planned.notices[0].message


def test_an_unmarked_schema_the_role_owns_is_marked_again() -> None:
    planned = plan(with_schema(comment=None))

    assert list(planned.statements) == [f"COMMENT ON SCHEMA \"checkout_orders\" IS '{MARK}'"]
    assert planned.state == "Repaired"


def test_role_attribute_drift_is_set_back_in_one_statement() -> None:
    planned = plan(with_role(flags=frozenset({"SUPERUSER", "INHERIT"}), expires=True))

    assert list(planned.statements) == [
        'ALTER ROLE "checkout_checkout_orders" WITH LOGIN NOSUPERUSER NOINHERIT',
        "ALTER ROLE \"checkout_checkout_orders\" VALID UNTIL 'infinity'",
    ]
    assert planned.repairs == ("role attributes (LOGIN NOSUPERUSER NOINHERIT)", "password expiry")


@pytest.mark.parametrize("stored", [None, "public", "checkout_orders, public", '"$user", public'])
def test_a_search_path_other_than_the_schema_is_set_back(stored: str | None) -> None:
    planned = plan(with_role(search_path=stored))

    assert list(planned.statements) == ['ALTER ROLE "checkout_checkout_orders" SET search_path TO "checkout_orders"']


def test_a_quoted_stored_search_path_is_the_schema_too() -> None:
    assert plan(with_role(search_path='"checkout_orders"')).statements == ()


def test_grant_drift_is_revoked_or_regranted() -> None:
    planned = plan(
        replace(
            AS_WANTED,
            role=replace(
                ROLE_AS_WANTED,
                database_privileges=frozenset({"CONNECT", "CREATE"}),
                other_schema_grants=("checkout_payment", "public"),
            ),
            schema=replace(SCHEMA_AS_WANTED, role_privileges=frozenset({"USAGE"}), default_privileges=frozenset()),
        )
    )

    assert list(planned.statements) == [
        'GRANT TEMPORARY ON DATABASE "checkout" TO "checkout_checkout_orders"',
        'REVOKE CREATE ON DATABASE "checkout" FROM "checkout_checkout_orders"',
        'REVOKE ALL ON SCHEMA "checkout_payment" FROM "checkout_checkout_orders"',
        'REVOKE ALL ON SCHEMA "public" FROM "checkout_checkout_orders"',
        'GRANT USAGE, CREATE ON SCHEMA "checkout_orders" TO "checkout_checkout_orders"',
        *DEFAULT_PRIVILEGES,
    ]
    assert planned.state == "Repaired"
    assert len(planned.notices) == 1
    assert "checkout_payment, public" in planned.notices[0].message


def test_a_schema_handed_to_someone_else_is_handed_back() -> None:
    planned = plan(with_schema(owner="intruder"))

    assert list(planned.statements) == ['ALTER SCHEMA "checkout_orders" OWNER TO "checkout_checkout_orders"']
    assert planned.repairs == ("schema owner (was intruder)",)


def test_a_non_superuser_admin_joins_the_role_before_creating_its_schema() -> None:
    admin = replace(ADMIN, name="rds_admin", superuser=False)

    statements = list(plan(NOTHING, admin=admin).statements)

    grant = statements.index('GRANT "checkout_checkout_orders" TO "rds_admin"')
    assert grant < statements.index('CREATE SCHEMA "checkout_orders" AUTHORIZATION "checkout_checkout_orders"')
    assert statements[-1].startswith('ALTER DEFAULT PRIVILEGES FOR ROLE "rds_admin"')
    assert plan(replace(AS_WANTED, role=replace(ROLE_AS_WANTED, password_current=None)), admin=admin).state == "Ready"


def test_an_admin_that_may_not_grant_on_the_database_leaves_it_to_public() -> None:
    statements = plan(NOTHING, admin=replace(ADMIN, grants_on_database=False)).statements

    assert not any("ON DATABASE" in statement for statement in statements)


def test_names_and_owner_are_quoted_in_every_statement() -> None:
    odd = ServiceDatabase(service="order", schema='we"ird', role="r'o\\le", secret_name="x")
    admin = replace(ADMIN, name='ad"min', database="data base")

    result = plan_service(odd, NOTHING, owner="ns/it's", admin=admin, password_verifier="p'w\\d")

    assert isinstance(result, ServicePlan)
    assert result.statements[:3] == (
        'CREATE ROLE "r\'o\\le" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS',
        "COMMENT ON ROLE \"r'o\\le\" IS 'managed by checkout-operator for ns/it''s'",
        "ALTER ROLE \"r'o\\le\" PASSWORD E'p''w\\\\d'",
    )
    assert 'GRANT CONNECT, TEMPORARY ON DATABASE "data base" TO "r\'o\\le"' in result.statements
    assert 'CREATE SCHEMA "we""ird" AUTHORIZATION "r\'o\\le"' in result.statements
    assert 'ALTER DEFAULT PRIVILEGES FOR ROLE "ad""min" IN SCHEMA "we""ird" GRANT ALL ON TABLES TO "r\'o\\le"' in (
        result.statements
    )


def test_names_from_the_spec_plan_cleanly() -> None:
    spec = PlatformSpec.parse(
        {
            "kafka": {"bootstrapServers": ["k:9092"], "topicPrefix": "Shop-EU"},
            "postgres": {"host": "db", "database": "Checkout", "adminSecretRef": {"name": "pg"}},
        }
    )
    names = service_database("shop", spec, "order")

    statements = plan(NOTHING, database=names).statements

    assert names.schema == "shop_eu_orders"
    assert f'CREATE SCHEMA "shop_eu_orders" AUTHORIZATION "{names.role}"' in statements


# --- ownership conflicts ----------------------------------------------------------------------------


def test_a_role_of_another_platform_is_refused_by_name() -> None:
    message = conflict(with_role(comment="managed by checkout-operator for other-ns/shop"))

    assert "role checkout_checkout_orders" in message
    assert "other-ns/shop" in message


def test_an_unmarked_role_is_refused_with_the_way_to_adopt_it() -> None:
    message = conflict(replace(NOTHING, role=replace(ROLE_AS_WANTED, comment="made by a DBA")))

    assert "not managed by checkout-operator" in message
    assert f"'{MARK}'" in message


def test_a_schema_of_another_platform_is_refused() -> None:
    message = conflict(with_schema(comment="managed by checkout-operator for other-ns/shop"))

    assert "schema checkout_orders" in message
    assert "other-ns/shop" in message


def test_an_unmarked_schema_with_objects_of_unknown_origin_is_refused() -> None:
    message = conflict(replace(NOTHING, schema=SchemaFacts(comment=None, owner="someone", empty=False)))

    assert "schema checkout_orders" in message
    assert "someone" in message


# --- plan_deletion ----------------------------------------------------------------------------------


def test_deletion_drops_what_is_marked_for_the_platform() -> None:
    deletion = plan_deletion(ORDER, AS_WANTED, owner=OWNER)

    assert deletion == DeletionPlan(drop_schema=True, drop_role=True)
    assert deletion.statements(ORDER) == (
        'DROP SCHEMA IF EXISTS "checkout_orders" CASCADE',
        'DROP OWNED BY "checkout_checkout_orders"',
        'DROP ROLE IF EXISTS "checkout_checkout_orders"',
    )


def test_deletion_of_nothing_drops_nothing() -> None:
    assert plan_deletion(ORDER, NOTHING, owner=OWNER).statements(ORDER) == ()


def test_deletion_leaves_another_platforms_objects_and_says_whose() -> None:
    theirs = "managed by checkout-operator for other-ns/shop"

    deletion = plan_deletion(ORDER, with_role(comment=theirs), owner=OWNER)

    assert not deletion.drop_role
    assert deletion.drop_schema
    assert deletion.kept == ("role checkout_checkout_orders (of other-ns/shop)",)


def test_deletion_takes_an_unmarked_schema_the_platforms_role_owns() -> None:
    deletion = plan_deletion(ORDER, with_schema(comment="a DBA's note"), owner=OWNER)

    assert deletion == DeletionPlan(drop_schema=True, drop_role=True)


def test_deletion_keeps_the_role_when_it_owns_a_schema_left_alone() -> None:
    """DROP OWNED BY the role would otherwise take the other platform's schema along."""
    deletion = plan_deletion(ORDER, with_schema(comment="managed by checkout-operator for other/x"), owner=OWNER)

    assert not deletion.drop_schema
    assert not deletion.drop_role
    assert deletion.statements(ORDER) == ()
    assert deletion.kept == (
        "schema checkout_orders (of other/x)",
        "role checkout_checkout_orders (owns the schema left alone)",
    )


# --- failures and the outcome -----------------------------------------------------------------------

POSTGRES = PlatformSpec.parse(
    {
        "kafka": {"bootstrapServers": ["k:9092"]},
        "postgres": {"host": "db.example", "port": 5433, "database": "checkout", "adminSecretRef": {"name": "pg"}},
    }
).postgres


def describe(error: BaseException) -> Failure | None:
    return describe_failure(
        error, postgres=POSTGRES, database="checkout", admin="postgres", client=PostgresClientSettings(timeout_s=3)
    )


@pytest.mark.parametrize(
    ("error", "reason", "words"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "PostgresUnreachable", "db.example:5433"),
        (TimeoutError(), "PostgresUnreachable", "did not answer within 3s"),
        (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), "PostgresUnreachable", "3s"),
        (asyncpg.InvalidPasswordError("password authentication failed"), "AuthenticationFailed", "'pg'"),
        (
            asyncpg.InvalidAuthorizationSpecificationError('role "x" does not exist'),
            "AuthenticationFailed",
            "'postgres'",
        ),
        (asyncpg.InvalidCatalogNameError('database "checkout" does not exist'), "DatabaseMissing", "'checkout'"),
        (asyncpg.InsufficientPrivilegeError("permission denied to create role"), "InsufficientPrivilege", "CREATEROLE"),
        (asyncpg.DuplicateObjectError('role "x" already exists'), "PostgresError", "42710"),
    ],
)
def test_errors_become_conditions_that_say_what_to_do(error: BaseException, reason: str, words: str) -> None:
    failure = describe(error)

    assert failure is not None
    assert failure.reason == reason
    assert words in failure.message
    assert failure.retry
    assert failure.message.endswith("retrying")


def test_bugs_are_not_dressed_up_as_conditions() -> None:
    assert describe(KeyError("oops")) is None


def test_a_pass_that_cannot_start_reports_every_service() -> None:
    failure = Failure("PostgresUnreachable", "PostgreSQL at db.example:5433 is unreachable (refused); retrying")

    outcome = failed_pass([ORDER], failure)

    assert not outcome.ready
    assert outcome.retry
    assert outcome.message == failure.message
    assert outcome.detail == [
        {
            "service": "order",
            "schema": "checkout_orders",
            "role": "checkout_checkout_orders",
            "state": "Error",
            "message": f"not reconciled: {failure.message}",
        }
    ]


def test_a_partial_pass_names_what_is_done_and_what_is_not() -> None:
    cart = replace(ORDER, service="cart", schema="checkout_cart", role="checkout_checkout_cart")
    conflict_failure = Failure("OwnershipConflict", "role checkout_checkout_cart is managed for x/y", retry=False)
    results = [
        ServiceResult(ORDER, "Created", "created", notices=(Notice("Normal", "DatabaseProvisioned", "order: c"),)),
        ServiceResult(cart, "Error", conflict_failure.message, failure=conflict_failure),
    ]

    outcome = summarise(results, ready_reason="DatabaseReady", ready_message="unused")

    assert not outcome.ready
    assert outcome.reason == "OwnershipConflict"
    assert not outcome.retry  # nothing to wait for: a person has to act
    assert outcome.message == (
        "cart: role checkout_checkout_cart is managed for x/y (1 of 2 services done; not done: cart)"
    )
    assert [item["state"] for item in outcome.detail] == ["Created", "Error"]
    assert reasons(outcome.notices) == ["DatabaseProvisioned"]  # what was applied is still told


def test_a_full_pass_is_ready_with_the_message_given() -> None:
    outcome = summarise([ServiceResult(ORDER, "Ready")], ready_reason="DatabaseReady", ready_message="1 ready")

    assert outcome.ready
    assert (outcome.reason, outcome.message, outcome.notices) == ("DatabaseReady", "1 ready", [])
    assert outcome.detail == [
        {"service": "order", "schema": "checkout_orders", "role": "checkout_checkout_orders", "state": "Ready"}
    ]
