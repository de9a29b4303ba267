"""The saga's rules, free of I/O: state, transitions, deadlines."""
