"""The migrations build exactly the tables the code declares (``alembic check``), via the service's CLI.

The checks are every participant's (``participant_checks``), run here on the inventory service.
"""

from __future__ import annotations

import pytest
from participant_checks import (  # noqa: F401 - collected here
    test_the_command_line_migrates_a_new_schema,
    test_the_migrated_schema_matches_the_models,
)

pytestmark = pytest.mark.integration
