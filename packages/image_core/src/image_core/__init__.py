"""image-mcp core."""
