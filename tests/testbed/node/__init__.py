"""Files for the cluster twin's nodes (the k3s stand-in, units, scripts)."""
