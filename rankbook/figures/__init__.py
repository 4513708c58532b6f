"""One figure style and the book's figures and tables."""
