"""What people and programs read: text tables, JSON documents and HTML summaries."""
