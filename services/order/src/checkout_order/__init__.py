"""Creates the order of a paid checkout."""
