"""The HTTP edge: app factory, runtime, routes, per-sample and OpenRLHF routes, middleware."""
