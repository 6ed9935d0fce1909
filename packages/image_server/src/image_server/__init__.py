"""image-mcp server."""
