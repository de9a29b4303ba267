"""``python -m checkout_payment`` serves; ``python -m checkout_payment migrate`` migrates its schema."""

from __future__ import annotations

import sys

from checkout_kit.cli import main
from checkout_payment.config import PaymentSettings
from checkout_payment.main import MIGRATIONS, create_app

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            prog="checkout_payment",
            settings_factory=PaymentSettings,
            app_factory=create_app,
            migrations_dir=MIGRATIONS,
        )
    )
