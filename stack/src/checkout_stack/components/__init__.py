"""One module per component of the local stack; they share only ``base``."""
