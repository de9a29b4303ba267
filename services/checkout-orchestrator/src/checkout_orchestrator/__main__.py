"""``python -m checkout_orchestrator`` serves; ``python -m checkout_orchestrator migrate`` migrates its schema."""

from __future__ import annotations

import sys

from checkout_kit.cli import main
from checkout_orchestrator.config import OrchestratorSettings
from checkout_orchestrator.main import MIGRATIONS, create_app

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            prog="checkout_orchestrator",
            settings_factory=OrchestratorSettings,
            app_factory=create_app,
            migrations_dir=MIGRATIONS,
        )
    )
