"""``python -m checkout_order`` serves; ``python -m checkout_order migrate`` migrates its schema."""

from __future__ import annotations

import sys

from checkout_kit.cli import main
from checkout_order.config import OrderSettings
from checkout_order.main import MIGRATIONS, create_app

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            prog="checkout_order",
            settings_factory=OrderSettings,
            app_factory=create_app,
            migrations_dir=MIGRATIONS,
        )
    )
