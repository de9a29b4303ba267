"""CheckoutPlatform operator: kopf handlers delegating to one reconciler per concern."""
