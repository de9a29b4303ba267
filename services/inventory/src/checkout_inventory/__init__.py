"""Stock per SKU and reservations per saga; never oversells."""
