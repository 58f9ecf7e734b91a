"""Layer 7: the model-lifecycle protocol on the control topic, retraining, shadow evidence."""
