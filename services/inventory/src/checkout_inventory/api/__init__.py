"""The inventory's HTTP API: the admin stock routes and the reservation view."""
