"""A user's own multi-exit network and bench meter, plugged into ffenergy by entry points."""
