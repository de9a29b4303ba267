"""``python -m checkout_gateway`` serves; ``python -m checkout_gateway migrate`` migrates its schema."""

from __future__ import annotations

import sys

from checkout_gateway.config import GatewaySettings
from checkout_gateway.main import MIGRATIONS, create_app
from checkout_kit.cli import main

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            prog="checkout_gateway",
            settings_factory=GatewaySettings,
            app_factory=create_app,
            migrations_dir=MIGRATIONS,
        )
    )
