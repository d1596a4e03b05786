"""Database migrations of the cost records."""
