"""`hecate daemon`: the UPS watch loop, its actions, and coordination between instances."""
