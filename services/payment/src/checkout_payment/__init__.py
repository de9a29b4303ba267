"""A simulated payment provider with Stripe-style test tokens; charges and refunds recorded."""
