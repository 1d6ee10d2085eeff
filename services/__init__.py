"""JakLapor services: intake, routing, notify, stats (one package each)."""
