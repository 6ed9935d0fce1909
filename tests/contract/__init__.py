"""Port contracts: one suite per port, run against every adapter of that port."""
