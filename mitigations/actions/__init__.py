"""Built-in actions, one module per kind; importing this registers them all."""
