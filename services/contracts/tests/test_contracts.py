"""The contracts: generated code is current, proto/ lints clean, and breaking changes are caught."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from checkout.v1 import commands_pb2, events_pb2, types_pb2

REPO = Path(__file__).resolve().parents[3]
PROTO = REPO / "proto"
BASELINE = PROTO / "baseline" / "checkout-v1.binpb"


def run(*argv: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, check=False, timeout=300)


def test_generated_code_is_current() -> None:
    result = run(sys.executable, PROTO / "generate.py", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_stale_generated_code_is_detected(tmp_path: Path) -> None:
    # Copy proto/ and the generated package, edit a .proto, and the check must fail.
    shutil.copytree(PROTO, tmp_path / "proto")
    shutil.copytree(REPO / "services" / "contracts" / "src", tmp_path / "services" / "contracts" / "src")
    types = tmp_path / "proto" / "checkout" / "v1" / "types.proto"
    types.write_text(types.read_text().replace("  string currency = 2;", "  string currency = 2;\n  string note = 3;"))
    result = run(sys.executable, tmp_path / "proto" / "generate.py", "--check")
    assert result.returncode == 1
    assert "types_pb2.py" in result.stdout


def test_proto_lints_clean(buf: Path) -> None:
    result = run(buf, "lint", cwd=PROTO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_breaking_change_against_the_baseline(buf: Path) -> None:
    result = run(buf, "breaking", "--against", BASELINE, cwd=PROTO)
    assert result.returncode == 0, f"breaking change (update the baseline only on purpose):\n{result.stdout}"


def test_a_renumbered_field_is_reported_as_breaking(buf: Path, tmp_path: Path) -> None:
    shutil.copytree(PROTO, tmp_path / "proto", ignore=shutil.ignore_patterns("*.py"))
    events = tmp_path / "proto" / "checkout" / "v1" / "events.proto"
    events.write_text(events.read_text().replace("string reservation_id = 2;", "string reservation_id = 9;", 1))
    result = run(buf, "breaking", "--against", BASELINE, cwd=tmp_path / "proto")
    assert result.returncode != 0
    assert "reservation_id" in result.stdout


def test_messages_round_trip_in_binary_and_json() -> None:
    from google.protobuf import json_format

    command = commands_pb2.ProcessPayment(
        saga_id="5f0c",
        customer_id="cust_1",
        payment_token="tok_visa",
        amount=types_pb2.Money(amount_minor=123_456, currency="EUR"),
    )
    assert commands_pb2.ProcessPayment.FromString(command.SerializeToString()) == command
    as_json = json_format.MessageToJson(command)
    assert '"amountMinor": "123456"' in as_json  # int64 is a string in the JSON mapping
    assert json_format.Parse(as_json, commands_pb2.ProcessPayment()) == command
    failed = events_pb2.PaymentFailed(saga_id="5f0c", reason=types_pb2.FAILURE_CODE_PAYMENT_DECLINED)
    assert "FAILURE_CODE_PAYMENT_DECLINED" in json_format.MessageToJson(failed)


@pytest.mark.parametrize(
    "name",
    [
        "CheckoutInitiated",
        "InventoryReserved",
        "InventoryReservationFailed",
        "InventoryReleased",
        "PaymentProcessed",
        "PaymentFailed",
        "PaymentRefunded",
        "OrderCreated",
        "OrderCreationFailed",
    ],
)
def test_every_event_carries_the_saga_id_first(name: str) -> None:
    descriptor = events_pb2.DESCRIPTOR.message_types_by_name[name]
    assert descriptor.fields_by_number[1].name == "saga_id"
