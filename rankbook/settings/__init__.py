"""Profiles (fast / reference / paper) and each part's validated settings."""
