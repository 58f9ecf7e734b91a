"""Layer 1, the ground floor: errors, settings, security settings, logs and the wire vocabulary."""
