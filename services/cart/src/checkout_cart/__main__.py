"""``python -m checkout_cart`` serves; ``python -m checkout_cart migrate`` migrates its schema."""

from __future__ import annotations

import sys

from checkout_cart.config import CartSettings
from checkout_cart.main import MIGRATIONS, create_app
from checkout_kit.cli import main

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            prog="checkout_cart",
            settings_factory=CartSettings,
            app_factory=create_app,
            migrations_dir=MIGRATIONS,
        )
    )
