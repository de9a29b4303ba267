"""``python -m checkout_inventory`` serves; ``python -m checkout_inventory migrate`` migrates its schema."""

from __future__ import annotations

import sys

from checkout_inventory.config import InventorySettings
from checkout_inventory.main import MIGRATIONS, create_app
from checkout_kit.cli import main

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            prog="checkout_inventory",
            settings_factory=InventorySettings,
            app_factory=create_app,
            migrations_dir=MIGRATIONS,
        )
    )
