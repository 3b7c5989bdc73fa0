"""Tasks: what to do before and after the device for one kind of network."""
